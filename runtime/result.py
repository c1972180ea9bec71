"""A whole answer as the fold of its stream: `accumulate(result, event)` over the ChatEvents of one run.

A non-streamed answer is built by folding exactly the events a stream would have sent (as the Anthropic SDK
builds its final message from the stream), so the two can never disagree. Dialects map a `ChatResult` to
their wire structs; nothing here knows a dialect.

Adding an event kind (say, reasoning text): give it a block type below, a `case` in `accumulate`, and the
dialects a field to render it from; `assert_never` points at every `match` that must learn of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import assert_never

from runtime.types import (
    ChatEvent,
    ChatFinished,
    Logprobs,
    PromptLogprobs,
    TextDelta,
    TokenIds,
    TokenLogprob,
    ToolCallArgs,
    ToolCallStart,
)


class OutOfOrder(Exception):
    """An event that cannot follow the ones before it (a producer's bug, never the client's)."""


@dataclass(slots=True)
class TextBlock:
    text: str


@dataclass(slots=True)
class CallBlock:
    index: int  # among this answer's calls
    id: str
    name: str
    fragments: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


Block = TextBlock | CallBlock


@dataclass(slots=True)
class ChatResult:
    """One run's answer so far: text runs and calls in output order, logprobs, and the finish once it came."""

    blocks: list[Block] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # None: none were sent (not asked for)
    prompt_logprobs: list[TokenLogprob] | None = None
    token_ids: list[int] = field(default_factory=list)  # every generated token's (with return_token_ids)
    finished: ChatFinished | None = None
    _calls: list[CallBlock] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.blocks if isinstance(b, TextBlock))

    @property
    def complete_blocks(self) -> list[Block]:
        """The blocks without calls the finish does not count as complete (one cut off by max_tokens would
        not parse, so no dialect returns it)."""
        complete = self.finished.tool_calls if self.finished is not None else 0
        return [b for b in self.blocks if not isinstance(b, CallBlock) or b.index < complete]

    @property
    def calls(self) -> list[CallBlock]:
        """The complete calls, in order."""
        complete = self.finished.tool_calls if self.finished is not None else 0
        return self._calls[:complete]


def accumulate(result: ChatResult, event: ChatEvent) -> ChatResult:
    """`result` with `event` folded in (in place; returned for folding). Raises OutOfOrder on an event that
    cannot come where it does: anything after the finish, arguments of a call that was not started."""
    if result.finished is not None:
        raise OutOfOrder(f"{type(event).__name__} after the finish")
    match event:
        case TextDelta():
            if event.text:
                last = result.blocks[-1] if result.blocks else None
                if isinstance(last, TextBlock):
                    last.text += event.text
                else:
                    result.blocks.append(TextBlock(event.text))
        case Logprobs():
            if result.logprobs is None:
                result.logprobs = []
            result.logprobs.extend(event.tokens)
        case PromptLogprobs():
            result.prompt_logprobs = list(event.tokens)
        case TokenIds():
            result.token_ids.extend(event.ids)
        case ToolCallStart():
            if event.index != len(result._calls):
                raise OutOfOrder(f"call {event.index} started after {len(result._calls)} calls")
            call = CallBlock(event.index, event.id, event.name)
            result._calls.append(call)
            result.blocks.append(call)
        case ToolCallArgs():
            if not 0 <= event.index < len(result._calls):
                raise OutOfOrder(f"arguments for call {event.index}, which was not started")
            result._calls[event.index].fragments.append(event.fragment)
        case ChatFinished():
            result.finished = event
        case _:
            assert_never(event)
    return result
