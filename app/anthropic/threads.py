"""Server-held conversations for the Messages API (the anthropic SDK's `thread`), on the shared conversation
store (app/store).

- `{"type": "create"}`: the conversation (system, tools, messages and the reply) is kept under the reply's id.
- `{"type": "continue", "previous_message_id": id}`: the request holds only the new turn's messages; the
  history, `system` and `tools` come from the thread (the SDK leaves those two out of a `continue` and the
  request may not repeat them), and the reply is kept as the thread's next turn. A thread this server does not
  hold (never created, evicted, or another dialect's id) is a 404 with `error_code: thread_not_found`, on
  which the SDK replays the whole history under a new thread.
A turn is kept only once its reply is complete, before the client sees its end (`message_stop` or the JSON
body), so a `continue` sent right after always finds it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

import msgspec

from app.anthropic import render
from app.anthropic import schemas as s
from app.anthropic.errors import ThreadNotFound
from app.store import ConversationStore, StoredTurn
from runtime.errors import InvalidRequest
from runtime.types import ChatEvent, ChatFinished

KIND = "message"
T = TypeVar("T")


class ThreadTurn(msgspec.Struct, omit_defaults=True):
    """One stored turn: the messages it added (its input, then the reply). The first turn also holds the
    thread's system prompt and tools."""

    messages: list[s.MessageIn]
    system: str | list[s.TextBlock] | None = None
    tools: list[s.ToolIn] | None = None


_turn_decoder = msgspec.json.Decoder(ThreadTurn)


async def resume(store: ConversationStore, req: s.MessagesRequest) -> s.MessagesRequest:
    """A `continue` request as the whole conversation it continues."""
    assert req.thread is not None
    previous = req.thread.previous_message_id
    if not previous:
        raise InvalidRequest("thread.previous_message_id is required to continue a thread.",
                             param="thread.previous_message_id")
    for name in ("system", "tools"):
        if getattr(req, name) is not None:
            raise InvalidRequest(f"`{name}` cannot be sent when continuing a thread: the thread keeps the one it "
                                 "was created with.", param=name)
    history = await store.history(previous)
    if history is None or any(turn.kind != KIND for turn in history):
        raise ThreadNotFound(f"No thread is held for previous_message_id {previous!r}; send the whole "
                             "conversation.", param="thread.previous_message_id")
    turns = [_turn_decoder.decode(turn.body) for turn in history]
    messages = [m for turn in turns for m in turn.messages]
    return msgspec.structs.replace(req, messages=[*messages, *req.messages], system=turns[0].system,
                                   tools=turns[0].tools)


async def record(store: ConversationStore, thread: s.ThreadIn, new_messages: list[s.MessageIn],
                 req: s.MessagesRequest, reply: s.MessageOut) -> None:
    """Keep the turn that produced `reply` (its id names it). `req` is the request as received (for a
    `create`, its system and tools start the thread)."""
    answer = s.MessageIn("assistant", [msgspec.Raw(msgspec.json.encode(block)) for block in reply.content])
    if thread.type == "continue":
        body, parent = ThreadTurn([*new_messages, answer]), thread.previous_message_id
    else:
        body, parent = ThreadTurn([*new_messages, answer], req.system, req.tools), None
    await store.put(StoredTurn(reply.id, KIND, parent, time.time(), msgspec.json.encode(body)))


async def recorded_stream(events: AsyncGenerator[T, None], store: ConversationStore, thread: s.ThreadIn,
                          new_messages: list[s.MessageIn], req: s.MessagesRequest, mid: str, model: str,
                          stops: tuple[str, ...]) -> AsyncGenerator[T, None]:
    """`events` passed through; once the run finishes, before its finish goes on to be rendered, the turn is
    kept."""
    seen: list[ChatEvent] = []
    try:
        async for event in events:
            if not isinstance(event, s.Ping):
                seen.append(event)  # type: ignore[arg-type]
            if isinstance(event, ChatFinished):
                collected = await render.collect(_replay(seen))
                await record(store, thread, new_messages, req, render.message(mid, model, collected, stops))
            yield event
    finally:
        await events.aclose()


async def _replay(events: list[ChatEvent]) -> AsyncIterator[ChatEvent]:
    for event in events:
        yield event
