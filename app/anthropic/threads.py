"""Server-held conversations for the Messages API (the anthropic SDK's `thread`), on the shared conversation
store (app/store).

- `{"type": "create"}`: the conversation (system, tools, messages and the reply) is kept under the reply's id.
- `{"type": "continue", "previous_message_id": id}`: the request holds only the new turn's messages; the
  history, `system` and `tools` come from the thread (the SDK leaves those two out of a `continue` and the
  request may not repeat them), and the reply is kept as the thread's next turn. A thread this server does not
  hold (never created, evicted, or another dialect's id) is a 404 with `error_code: thread_not_found`, on
  which the SDK replays the whole history under a new thread.
- A thread is linear, as the SDK's contract has it ("each response can be continued only once"; its `fork()`
  starts a new thread rather than continue an old reply twice): a `continue` from a reply that another turn
  has continued is a 400 with `error_code: thread_already_continued`, and one from a reply that a request still
  running is continuing is a 400 with `thread_continue_in_flight`; on both the SDK replays the whole history
  under a new thread. The request claims the reply in the store (`ConversationStore.claim`) before it runs and
  lets go if it fails before its turn is kept (a stream that fails after its first event keeps the claim: the
  client's next `continue` from that reply is then `thread_continue_in_flight`, and the SDK replays).
A turn is kept only once its reply is complete, before the client sees its end (`message_stop` or the JSON
body), so a `continue` sent right after always finds it.
"""

from __future__ import annotations

import time

import msgspec

from app.anthropic import render
from app.anthropic import schemas as s
from app.anthropic.errors import ThreadAlreadyContinued, ThreadContinueInFlight, ThreadNotFound
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


async def resume(store: ConversationStore, req: s.MessagesRequest, mid: str) -> s.MessagesRequest:
    """A `continue` request as the whole conversation it continues, its previous reply claimed for the turn
    `mid` (the caller releases it if the request fails before the turn is kept)."""
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
    holder = await store.claim(previous, mid)
    if holder is not None:
        if await store.get(holder) is not None:
            raise ThreadAlreadyContinued(
                f"Message {previous!r} has already been continued, and each message can be continued only once; "
                f"continue from the thread's most recent message (this one was continued by {holder!r}).",
                param="thread.previous_message_id")
        raise ThreadContinueInFlight(
            f"Another request is still continuing from message {previous!r}; wait for its reply and continue "
            "from that, or send the whole conversation with thread {\"type\": \"create\"}.",
            param="thread.previous_message_id")
    turns = [_turn_decoder.decode(turn.body) for turn in history]
    messages = [m for turn in turns for m in turn.messages]
    return msgspec.structs.replace(req, messages=[*messages, *req.messages], system=turns[0].system,
                                   tools=turns[0].tools)


class Turn:
    """The turn a threaded request makes: kept, with its reply, once the run has finished."""

    def __init__(self, store: ConversationStore, thread: s.ThreadIn, received: s.MessagesRequest, mid: str,
                 model: str, stops: tuple[str, ...], sign: render.Sign) -> None:
        self.store, self.thread, self.received = store, thread, received  # the request as the client sent it
        self.mid, self.model, self.stops, self.sign = mid, model, stops, sign

    async def record(self, result: ChatResult) -> None:
        reply = render.message(self.mid, self.model, result, self.stops, self.sign)
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

    def flush(self) -> bytes:
        return self.inner.flush()

    def keep_alive(self) -> bytes:
        return self.inner.keep_alive()

    def end(self) -> bytes:
        return self._held + self.inner.end()

    def error(self, err: ServiceError) -> bytes:
        return self.inner.error(err)
