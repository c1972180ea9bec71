"""Responses in the conversation store (app/store): each stored response is one turn, continuing its
`previous_response_id`; its body holds the response (what GET returns) and the input items its request added.
The history `previous_response_id` names is the chain's input and output items, oldest first."""

from __future__ import annotations

import time

import msgspec

from app.responses import schemas as s
from app.responses.render import new_id
from app.store import ConversationStore, StoredTurn
from runtime.errors import InvalidRequest, NotFound

KIND = "response"
_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "custom_tool_call": "ctc",
                "custom_tool_call_output": "ctco", "reasoning": "rs"}


class PreviousResponseNotFound(InvalidRequest):
    error_code = "previous_response_not_found"


async def history(store: ConversationStore, previous_id: str) -> list[msgspec.Raw]:
    chain = await store.history(previous_id)
    if chain is None or any(turn.kind != KIND for turn in chain):
        raise PreviousResponseNotFound(f"Previous response with id {previous_id!r} not found.",
                                       param="previous_response_id")
    items: list[msgspec.Raw] = []
    for turn in chain:
        body = s.stored_decoder.decode(turn.body)
        items.extend(body.input)
        items.extend(msgspec.Raw(msgspec.json.encode(item)) for item in body.response.output)
    return items


def input_items(req: s.ResponsesRequest) -> list[msgspec.Raw]:
    """The request's input as items, each with an id (as the input_items route lists them)."""
    if isinstance(req.input, str):
        return [msgspec.Raw(msgspec.json.encode({"id": new_id("msg"), "type": "message", "role": "user",
                                                 "content": [{"type": "input_text", "text": req.input}]}))]
    out = []
    for raw in req.input:
        item = msgspec.json.decode(raw)
        if isinstance(item, dict) and "id" not in item:
            item = {"id": new_id(_ID_PREFIXES.get(item.get("type", "message"), "item")), **item}
            raw = msgspec.Raw(msgspec.json.encode(item))
        out.append(raw)
    return out


async def keep(store: ConversationStore, response: s.ResponseObject, inputs: list[msgspec.Raw]) -> None:
    body = msgspec.json.encode(s.StoredResponse(response=response, input=inputs))
    await store.put(StoredTurn(response.id, KIND, response.previous_response_id, time.time(), body))


async def load(store: ConversationStore, response_id: str) -> s.StoredResponse:
    turn = await store.get(response_id)
    if turn is None or turn.kind != KIND:
        raise NotFound(f"Response with id {response_id!r} not found.", param="response_id")
    return s.stored_decoder.decode(turn.body)
