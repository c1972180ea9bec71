"""Anthropic routes: POST /v1/messages and /v1/messages/count_tokens (with any query, e.g. `?beta=true`).

GET /v1/models answers in Anthropic's shape from app/model_routes.py when the request carries
`anthropic-version`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from msgspec import UNSET, UnsetType

from litestar import Request, Response, Router, post

from app import streaming
from app.anthropic import context_management, convert, render, threads
from app.anthropic import schemas as s
from app.anthropic.errors import anthropic_error_handler
from app.anthropic.models import resolve
from app.decoding import decode, json_dumps
from app.models import ModelNames
from app.preparing import preparing
from app.request_id import engine_rids
from app.state import ServiceState
from app.store import ConversationStore
from runtime.service import GenerationService
from runtime.types import ChatRequest

log = logging.getLogger(__name__)

def _json(payload: object) -> Response:
    return Response(json_dumps(payload), media_type="application/json")


@post("/messages", status_code=200)
async def create_message(request: Request, service_state: ServiceState, names: ModelNames,
                         conversations: ConversationStore) -> Response:
    body = await request.body()
    mid = "msg_" + secrets.token_hex(12)
    async with preparing(request):
        received = req = await asyncio.to_thread(decode, s.messages_decoder, body)
        resolve(names, req.model)
        thread = req.thread if req.thread is not None and req.thread.type in ("create", "continue") else None
        if thread is not None and thread.type == "continue":
            req = await threads.resume(conversations, req, mid)  # the whole conversation, from the store
    # A continue has claimed its previous reply for this turn: let go if the request fails before the turn is
    # kept (an error, or a client gone before the answer; app/anthropic/threads.py).
    claimed = thread.previous_message_id if thread is not None and thread.type == "continue" else None
    try:
        response = await _answer(request, service_state, names, conversations, received, req, thread, mid)
    except BaseException:
        if claimed:
            await conversations.release(claimed, mid)
        raise
    if claimed and (response.status_code or 200) >= 400:  # (None: the route's 200)
        await conversations.release(claimed, mid)
    return response


async def _answer(request: Request, service_state: ServiceState, names: ModelNames,
                  conversations: ConversationStore, received: s.MessagesRequest, req: s.MessagesRequest,
                  thread: s.ThreadIn | None, mid: str) -> Response:
    """The reply to `req` (for a thread's `continue`, the whole conversation; `received` as sent)."""
    async with preparing(request):
        service = service_state.require()
        signer = service_state.thinking_signer
        chat, context = await _edited(service, await asyncio.to_thread(convert.chat_request, req, signer), req)
        prepared = await service.prepare_chat(chat, engine_rids(request, 1)[0], adapter=names.adapter(req.model))
    log.info("%.100r, %d prompt tokens, max_tokens %d%s", req.model, prepared.prompt_tokens,
             prepared.engine_request.sampling.max_new_tokens or 0, ", stream" if req.stream else "")
    stops = chat.sampling.stop
    turn = None if thread is None else threads.Turn(conversations, thread, received, mid, req.model, stops,
                                                    signer.sign)
    if req.stream:
        encoder = render.MessageEvents(mid, req.model, prepared.prompt_tokens, stops, signer.sign, context)
        if turn is None:
            return await streaming.stream(request, service_state, [prepared], encoder)
        recorded = threads.RecordedEvents(encoder, turn)
        return await streaming.stream(request, service_state, [prepared], recorded, recorded.finishing)
    return await streaming.respond(request, service_state, [prepared],
                                   lambda results: _json(render.message(mid, req.model, results[0], stops,
                                                                        signer.sign, context)),
                                   None if turn is None else lambda results: turn.record(results[0]))


@post("/messages/count_tokens", status_code=200)
async def count_tokens(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    body = await request.body()
    async with preparing(request):
        req = await asyncio.to_thread(decode, s.count_tokens_decoder, body)
        resolve(names, req.model)
        service = service_state.require()
        chat = await asyncio.to_thread(convert.conversation, req, service_state.thinking_signer)
        edited, context = await _edited(service, chat, req)
        tokens = await service.count_chat_tokens(edited)
        if context is not UNSET:
            context = {"original_input_tokens": await service.count_chat_tokens(chat)}
    return _json(s.CountTokensOut(tokens, context))


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
