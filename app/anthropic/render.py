"""Neutral results and events to Anthropic responses: the whole message from the run's ChatResult, and the
SSE event stream as a StreamEncoder (app/streaming.py drives both).

Usage: `input_tokens` counts the prompt tokens the engine computed (prompt - cached), `cache_read_input_tokens`
the ones its prefix cache supplied, and `cache_creation_input_tokens` is always 0: prefix caching is
automatic and free here, so input + cache_read is the whole prompt, as Anthropic's clients add it up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from msgspec import UNSET, UnsetType

from app import sse
from app.anthropic import schemas as s
from app.anthropic.errors import error_body
from app.anthropic.ids import tool_use_id
from runtime.errors import EngineFailure, ServiceError
from runtime.result import CallBlock, ChatResult, ReasoningBlock, TextBlock
from runtime.types import (
    ChatEvent,
    ChatFinished,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallArgs,
    ToolCallStart,
    Usage,
)

Sign = Callable[[str], str]  # a thinking block's signature (app/anthropic/signature.py)


def stop_reason(finished: ChatFinished, stop_sequences: tuple[str, ...]) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence)."""
    match finished.reason:
        case FinishReason.TOOL_CALLS:
            return "tool_use", None
        case FinishReason.LENGTH:
            return "max_tokens", None
        case FinishReason.STOP if finished.matched_stop is not None and finished.matched_stop in stop_sequences:
            return "stop_sequence", finished.matched_stop
        case FinishReason.STOP:
            return "end_turn", None
    raise AssertionError(f"{finished.reason} reached a dialect")  # app/streaming.py turns ABORT into an error


def usage_out(usage: Usage) -> s.UsageOut:
    return s.UsageOut(input_tokens=usage.prompt_tokens - usage.cached_tokens, output_tokens=usage.completion_tokens,
                      cache_creation_input_tokens=0, cache_read_input_tokens=usage.cached_tokens)


# -- the whole message ----------------------------------------------------------------------------------


def message(mid: str, model: str, result: ChatResult, stop_sequences: tuple[str, ...], sign: Sign,
            context: dict[str, Any] | UnsetType = UNSET) -> s.MessageOut:
    finished = result.finished
    assert finished is not None  # the run owner hands over only finished results
    reason, sequence = stop_reason(finished, stop_sequences)
    content: list[s.ContentOut] = []
    for block in result.complete_blocks:
        if isinstance(block, TextBlock):
            content.append(s.TextOut(block.text))
        elif isinstance(block, ReasoningBlock):
            content.append(s.ThinkingOut(block.text, sign(block.text)))
        else:
            content.append(s.ToolUseOut(tool_use_id(block.id), block.name, _arguments(block)))
    return s.MessageOut(mid, model, content, reason, sequence, usage_out(finished.usage), context_management=context)


def _arguments(call: CallBlock) -> dict:
    try:
        arguments = json.loads(call.arguments)
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):  # the grammar makes this unreachable; never hand out a broken call
        raise EngineFailure(f"The model's call to {call.name!r} did not produce a JSON object.")
    return arguments


# -- the event stream (driven by app/streaming.py) -------------------------------------------------------


def sse_record(event: s.StreamEvent) -> bytes:
    """One SSE record; its `event:` line is the payload's `type`."""
    return sse.named(str(type(event).__struct_config__.tag), event)


PING = sse_record(s.Ping())


class MessageEvents:
    """message_start, then one content block per thinking run, text run or tool call (indexes contiguous from
    0, each opened before its deltas and stopped before the next opens; a thinking block's last delta is its
    signature_delta, as Anthropic sends it), message_delta, message_stop; pings for keep-alives; a failure as
    an `error` event."""

    def __init__(self, mid: str, model: str, input_tokens: int, stop_sequences: tuple[str, ...], sign: Sign,
                 context: dict[str, Any] | UnsetType = UNSET) -> None:
        self.mid, self.model, self.input_tokens = mid, model, input_tokens
        self.stop_sequences, self.sign, self.context = stop_sequences, sign, context
        self.index = -1  # the last block opened
        self.open_kind: str | None = None  # "thinking", "text" or "tool_use" while a block is open
        self.thinking: list[str] = []  # the open thinking block's text, signed when it closes

    def start(self) -> bytes:
        start_usage = s.UsageOut(input_tokens=self.input_tokens, output_tokens=0)
        return sse_record(s.MessageStart(s.MessageOut(self.mid, self.model, [], None, None, start_usage)))

    def flush(self) -> bytes:
        return b""

    def keep_alive(self) -> bytes:
        return PING

    def end(self) -> bytes:
        return b""

    def error(self, err: ServiceError) -> bytes:
        return sse_record(error_body(err))

    def event(self, index: int, event: ChatEvent) -> bytes:
        return b"".join(sse_record(e) for e in self.records(event))

    def records(self, event: ChatEvent) -> list[s.StreamEvent]:
        out: list[s.StreamEvent] = []
        match event:
            case ReasoningDelta():
                if not event.text:
                    return out
                if self.open_kind != "thinking":
                    self._open(out, "thinking", s.ThinkingOut("", ""))
                self.thinking.append(event.text)
                out.append(s.ContentBlockDelta(self.index, s.ThinkingDeltaOut(event.text)))
            case TextDelta():
                if not event.text:
                    return out
                if self.open_kind != "text":
                    self._open(out, "text", s.TextOut(""))
                out.append(s.ContentBlockDelta(self.index, s.TextDeltaOut(event.text)))
            case ToolCallStart():
                self._open(out, "tool_use", s.ToolUseOut(tool_use_id(event.id), event.name, {}))
            case ToolCallArgs():
                if event.fragment:
                    out.append(s.ContentBlockDelta(self.index, s.InputJsonDelta(event.fragment)))
            case ChatFinished():
                reason, sequence = stop_reason(event, self.stop_sequences)
                self._close(out)
                out.append(s.MessageDelta(s.MessageDeltaBody(reason, sequence), usage_out(event.usage),
                                          self.context))
                out.append(s.MessageStop())
        return out

    def _open(self, out: list[s.StreamEvent], kind: str, block: s.ContentOut) -> None:
        self._close(out)
        self.index += 1
        self.open_kind = kind
        out.append(s.ContentBlockStart(self.index, block))

    def _close(self, out: list[s.StreamEvent]) -> None:
        if self.open_kind == "thinking":
            out.append(s.ContentBlockDelta(self.index, s.SignatureDeltaOut(self.sign("".join(self.thinking)))))
            self.thinking.clear()
        if self.open_kind is not None:
            out.append(s.ContentBlockStop(self.index))
            self.open_kind = None
