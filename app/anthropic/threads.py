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

import msgspec

from app.anthropic import render
from app.anthropic import schemas as s
from app.anthropic.errors import ThreadNotFound
from app.store import ConversationStore, StoredTurn
from runtime.errors import InvalidRequest, ServiceError
from runtime.result import ChatResult, accumulate
from runtime.types import ChatEvent, ChatFinished

KIND = "message"


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


class Turn:
    """The turn a threaded request makes: kept, with its reply, once the run has finished."""

    def __init__(self, store: ConversationStore, thread: s.ThreadIn, received: s.MessagesRequest, mid: str,
                 model: str, stops: tuple[str, ...]) -> None:
        self.store, self.thread, self.received = store, thread, received  # the request as the client sent it
        self.mid, self.model, self.stops = mid, model, stops

    async def record(self, result: ChatResult) -> None:
        reply = render.message(self.mid, self.model, result, self.stops)
        answer = s.MessageIn("assistant", [msgspec.Raw(msgspec.json.encode(block)) for block in reply.content])
        new = [*self.received.messages, answer]
        if self.thread.type == "continue":
            body, parent = ThreadTurn(new), self.thread.previous_message_id
        else:  # a create: its system prompt and tools are the thread's
            body, parent = ThreadTurn(new, self.received.system, self.received.tools), None
        await self.store.put(StoredTurn(self.mid, KIND, parent, time.time(), msgspec.json.encode(body)))


class RecordedEvents:
    """A stream encoder (app/streaming.py) around the Messages one, for a threaded request: it folds the events,
    holds back the records of the finish (message_delta, message_stop) until `end()`, and `finishing`, which
    the run owner awaits before `end()`, keeps the turn."""

    def __init__(self, inner: render.MessageEvents, turn: Turn) -> None:
        self.inner, self.turn = inner, turn
        self.result = ChatResult()
        self._held = b""

    def start(self) -> bytes:
        return self.inner.start()

    def event(self, index: int, event: ChatEvent) -> bytes:
        accumulate(self.result, event)
        out = self.inner.event(index, event)
        if isinstance(event, ChatFinished):
            self._held, out = out, b""
        return out

    async def finishing(self) -> None:
        await self.turn.record(self.result)

    def keep_alive(self) -> bytes:
        return self.inner.keep_alive()

    def end(self) -> bytes:
        return self._held + self.inner.end()

    def error(self, err: ServiceError) -> bytes:
        return self.inner.error(err)
