"""Anthropic routes: POST /v1/messages and /v1/messages/count_tokens (with any query, e.g. `?beta=true`).

GET /v1/models answers in Anthropic's shape from the OpenAI router, which delegates to app.anthropic.models
when the request carries `anthropic-version`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from msgspec import UNSET, UnsetType

from litestar import Request, Response, Router, post
from litestar.response import Stream

from app.anthropic import context_management, convert, render, threads
from app.anthropic import schemas as s
from app.anthropic.errors import anthropic_error_handler, request_id
from app.anthropic.models import resolve
from app.anthropic.pacing import FIRST_EVENT_GRACE_S, with_pings
from app.decoding import decode, json_dumps
from app.models import ModelNames
from app.preparing import preparing
from app.state import ServiceState
from app.store import ConversationStore
from app.streaming import SSE_HEADERS, ClientDisconnected, disconnected_response, start_events, unless_disconnected
from runtime.service import GenerationService, PreparedRequest
from runtime.types import ChatEvent, ChatFinished, ChatRequest

log = logging.getLogger(__name__)
T = TypeVar("T")

def _json(payload: object, rid: str) -> Response:
    return Response(json_dumps(payload), media_type="application/json", headers={"request-id": rid})


async def _collect(service_state: ServiceState, prepared: PreparedRequest) -> render.Collected:
    async with service_state.admit() as lease:
        return await render.collect(await start_events(service_state, prepared, lease))


async def _start(service_state: ServiceState, prepared: PreparedRequest) -> asyncio.Future[AsyncIterator[ChatEvent]]:
    """Admitted (after a wait in the queue, if need be), the run started; its first event awaited for at most
    the grace period (see app/anthropic/pacing.py). A run that fails at once raises here, for a real status."""
    async with service_state.admit() as lease:
        starting = asyncio.ensure_future(start_events(service_state, prepared, lease))
        try:
            await asyncio.wait({starting}, timeout=FIRST_EVENT_GRACE_S)
        except BaseException:
            starting.cancel()
            raise
    if starting.done():
        starting.result()
    return starting


def _log_finish(rid: str, finished: ChatFinished) -> None:
    u = finished.usage
    log.info("%s: %s, %d prompt tokens (%d cached), %d output tokens", rid, finished.reason.value, u.prompt_tokens,
             u.cached_tokens, u.completion_tokens)


async def _logged(rid: str, events: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    try:
        async for event in events:
            if isinstance(event, ChatFinished):
                _log_finish(rid, event)
            yield event
    finally:
        await events.aclose()


@post("/messages", status_code=200)
async def create_message(request: Request, service_state: ServiceState, names: ModelNames,
                         conversations: ConversationStore) -> Response:
    rid = request_id(request)
    body = await request.body()
    async with preparing(request):
        received = req = await asyncio.to_thread(decode, s.messages_decoder, body)
        resolve(names, req.model)
        thread = req.thread if req.thread is not None and req.thread.type in ("create", "continue") else None
        if thread is not None and thread.type == "continue":
            req = await threads.resume(conversations, req)
        service = service_state.require()
        chat, context = await _edited(service, await asyncio.to_thread(convert.chat_request, req), req)
        prepared = await service.prepare_chat(chat)
    log.info("%s: %.100r, %d prompt tokens, max_tokens %d%s", rid, req.model, prepared.prompt_tokens,
             prepared.engine_request.sampling.max_new_tokens or 0, ", stream" if req.stream else "")
    mid = "msg_" + secrets.token_hex(12)
    stops = chat.sampling.stop
    if not req.stream:
        try:
            collected = await unless_disconnected(request, _collect(service_state, prepared))
        except ClientDisconnected:
            return disconnected_response()
        assert collected.finished is not None
        _log_finish(rid, collected.finished)
        reply = render.message(mid, req.model, collected, stops, context)
        if thread is not None:
            await threads.record(conversations, thread, received.messages, received, reply)
        return _json(reply, rid)

    try:
        starting = await unless_disconnected(request, _start(service_state, prepared))
    except ClientDisconnected:
        return disconnected_response()
    events = _logged(rid, with_pings(starting))
    if thread is not None:
        events = threads.recorded_stream(events, conversations, thread, received.messages, received, mid, req.model,
                                         stops)
    return Stream(render.sse_stream(mid, req.model, prepared.prompt_tokens, events, stops, context),
                  media_type="text/event-stream", headers={**SSE_HEADERS, "request-id": rid})


@post("/messages/count_tokens", status_code=200)
async def count_tokens(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    rid = request_id(request)
    body = await request.body()
    async with preparing(request):
        req = await asyncio.to_thread(decode, s.count_tokens_decoder, body)
        resolve(names, req.model)
        service = service_state.require()
        chat = await asyncio.to_thread(convert.conversation, req)
        edited, context = await _edited(service, chat, req)
        tokens = await service.count_chat_tokens(edited)
        if context is not UNSET:
            context = {"original_input_tokens": await service.count_chat_tokens(chat)}
    return _json(s.CountTokensOut(tokens, context), rid)


async def _edited(service: GenerationService, chat: ChatRequest,
                  req: s.CountTokensRequest) -> tuple[ChatRequest, dict[str, Any] | UnsetType]:
    """The conversation after the request's context_management edits, and what to report of them."""
    if req.context_management is None:
        return chat, UNSET
    edits = context_management.parse(req.context_management)
    chat, applied = await context_management.apply(chat, edits, service.count_chat_tokens)
    return chat, {"applied_edits": applied}


def anthropic_router() -> Router:
    return Router(
        path="/v1",
        route_handlers=[create_message, count_tokens],
        exception_handlers={Exception: anthropic_error_handler},
    )
