"""Responses routes: POST /v1/responses (streamed or not), GET and DELETE /v1/responses/{id},
GET /v1/responses/{id}/input_items, POST /v1/responses/{id}/cancel. Errors in OpenAI's shape."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import msgspec

from litestar import Request, Response, Router, delete, get, post

from app import streaming
from app.decoding import decode, json_dumps
from app.models import ModelNames
from app.openai.errors import openai_error_handler
from app.preparing import preparing
from app.responses import convert, render, stored
from app.responses import schemas as s
from app.responses.render import ResponseBuilder, new_id
from app.request_id import engine_rids
from app.state import ServiceState
from app.store import ConversationStore
from runtime.errors import InvalidRequest
from runtime.result import ChatResult

log = logging.getLogger(__name__)


def json_response(payload: object) -> Response:
    return Response(json_dumps(payload), media_type="application/json")


@post("/responses", status_code=200)
async def create_response(request: Request, service_state: ServiceState, names: ModelNames,
                          conversations: ConversationStore) -> Response:
    body = await request.body()
    async with preparing(request):
        req = await asyncio.to_thread(decode, s.responses_decoder, body)
        model = names.check(req.model)
        history = await stored.history(conversations, req.previous_response_id) if req.previous_response_id else []
        converted = await asyncio.to_thread(convert.chat_request, req, history)
        service = service_state.require()
        prepared = await service.prepare_chat(converted.chat, engine_rids(request, 1)[0],
                                              adapter=names.adapter(model))
    rid = new_id("resp")
    log.info("%s: %.100r, %d prompt tokens, max_output_tokens %d%s%s", rid, req.model, prepared.prompt_tokens,
             prepared.engine_request.sampling.max_new_tokens or 0, ", stream" if req.stream else "",
             ", stored" if req.store else "")
    builder = ResponseBuilder(render.snapshot(rid, model, req, converted), converted.names)
    inputs = stored.input_items(req)

    async def keep() -> None:
        if req.store:
            await stored.keep(conversations, builder.response, inputs)

    if req.stream:
        return await streaming.stream(request, service_state, [prepared], render.ResponseEvents(builder), keep)

    async def finished(results: list[ChatResult]) -> None:
        render.from_result(builder, results[0])
        await keep()

    return await streaming.respond(request, service_state, [prepared],
                                   lambda _: json_response(builder.response), finished)


@get("/responses/{response_id:str}")
async def get_response(response_id: str, conversations: ConversationStore, stream: str | None = None) -> Response:
    if stream is not None and stream.lower() in ("true", "1", "yes", "on"):  # (a stored stream is not kept)
        raise InvalidRequest("Replaying a stored response as a stream (stream=true) is not supported; retrieve it "
                             "without stream.", param="stream")
    return json_response((await stored.load(conversations, response_id)).response)


@delete("/responses/{response_id:str}", status_code=200)
async def delete_response(response_id: str, conversations: ConversationStore) -> Response:
    await stored.load(conversations, response_id)  # a 404 for another dialect's turn, too
    await conversations.delete(response_id)
    return json_response(s.DeletedOut(response_id))


@get("/responses/{response_id:str}/input_items")
async def list_input_items(response_id: str, conversations: ConversationStore, limit: int = 20,
                           order: Literal["asc", "desc"] = "desc", after: str | None = None) -> Response:
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100.", param="limit")
    items = [msgspec.json.decode(raw) for raw in (await stored.load(conversations, response_id)).input]
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"No input item with id {after!r} in this response.", param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return json_response(s.InputItemList(page, page[0].get("id") if page else None,
                                         page[-1].get("id") if page else None, has_more=len(items) > limit))


@post("/responses/{response_id:str}/cancel", status_code=200)
async def cancel_response(response_id: str, conversations: ConversationStore) -> Response:
    await stored.load(conversations, response_id)
    raise InvalidRequest("Only background responses can be cancelled, and this server runs none: a response is "
                         "stored once it has finished.", param="response_id")


def responses_router() -> Router:
    return Router(
        path="/v1",
        route_handlers=[create_response, get_response, delete_response, list_input_items, cancel_response],
        exception_handlers={Exception: openai_error_handler},
    )
