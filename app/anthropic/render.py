"""Neutral chat events to Anthropic responses: the aggregated message, and the SSE event stream.

Usage: `input_tokens` counts the prompt tokens the engine computed (prompt - cached), `cache_read_input_tokens`
the ones its prefix cache supplied, and `cache_creation_input_tokens` is always 0: prefix caching is
automatic and free here, so input + cache_read is the whole prompt, as Anthropic's clients add it up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET, UnsetType

from app.anthropic import schemas as s
from app.anthropic.errors import error_body
from app.anthropic.ids import tool_use_id
from app.decoding import json_dumps
from app.errors import as_service_error
from runtime.errors import EngineFailure, EngineUnavailable
from runtime.types import ChatEvent, ChatFinished, FinishReason, TextDelta, ToolCallArgs, ToolCallStart, Usage


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
    raise EngineUnavailable("The request was aborted because the server is shutting down.")


def usage_out(usage: Usage) -> s.UsageOut:
    return s.UsageOut(input_tokens=usage.prompt_tokens - usage.cached_tokens, output_tokens=usage.completion_tokens,
                      cache_creation_input_tokens=0, cache_read_input_tokens=usage.cached_tokens)


# -- the whole message ----------------------------------------------------------------------------------


@dataclass
class _Call:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class Collected:
    blocks: list[str | _Call] = field(default_factory=list)  # text runs and calls, in output order
    finished: ChatFinished | None = None


async def collect(events: AsyncIterator[ChatEvent]) -> Collected:
    out = Collected()
    calls: list[_Call] = []
    async for event in events:
        match event:
            case TextDelta():
                if event.text:
                    if out.blocks and isinstance(out.blocks[-1], str):
                        out.blocks[-1] += event.text
                    else:
                        out.blocks.append(event.text)
            case ToolCallStart():
                calls.append(_Call(tool_use_id(event.id), event.name))
                out.blocks.append(calls[-1])
            case ToolCallArgs():
                calls[event.index].arguments.append(event.fragment)
            case ChatFinished():
                out.finished = event
    assert out.finished is not None
    # Only complete calls are returned: one cut off by max_tokens would not parse.
    incomplete = calls[out.finished.tool_calls :]
    out.blocks = [b for b in out.blocks if not any(b is call for call in incomplete)]
    return out


def message(mid: str, model: str, collected: Collected, stop_sequences: tuple[str, ...],
            context: dict[str, Any] | UnsetType = UNSET) -> s.MessageOut:
    finished = collected.finished
    assert finished is not None
    reason, sequence = stop_reason(finished, stop_sequences)
    content: list[s.ContentOut] = []
    for block in collected.blocks:
        if isinstance(block, str):
            content.append(s.TextOut(block))
        else:
            content.append(s.ToolUseOut(block.id, block.name, _arguments(block)))
    return s.MessageOut(mid, model, content, reason, sequence, usage_out(finished.usage), context_management=context)


def _arguments(call: _Call) -> dict:
    try:
        arguments = json.loads("".join(call.arguments))
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):  # the grammar makes this unreachable; never hand out a broken call
        raise EngineFailure(f"The model's call to {call.name!r} did not produce a JSON object.")
    return arguments


# -- the event stream -----------------------------------------------------------------------------------


async def stream_events(mid: str, model: str, input_tokens: int, events: AsyncIterator[ChatEvent | s.Ping],
                        stop_sequences: tuple[str, ...],
                        context: dict[str, Any] | UnsetType = UNSET) -> AsyncIterator[s.StreamEvent]:
    """message_start, then one content block per text run or tool call (indexes contiguous from 0, each
    opened before its deltas and stopped before the next opens), message_delta, message_stop. Pings pass
    through. Errors propagate: the caller decides how to report them."""
    start_usage = s.UsageOut(input_tokens=input_tokens, output_tokens=0)
    yield s.MessageStart(s.MessageOut(mid, model, [], None, None, start_usage))
    index = -1  # the last block opened
    open_kind: str | None = None  # "text" or "tool_use" while a block is open
    async for event in events:
        match event:
            case s.Ping():
                yield event
            case TextDelta():
                if not event.text:
                    continue
                if open_kind != "text":
                    if open_kind is not None:
                        yield s.ContentBlockStop(index)
                    index += 1
                    open_kind = "text"
                    yield s.ContentBlockStart(index, s.TextOut(""))
                yield s.ContentBlockDelta(index, s.TextDeltaOut(event.text))
            case ToolCallStart():
                if open_kind is not None:
                    yield s.ContentBlockStop(index)
                index += 1
                open_kind = "tool_use"
                yield s.ContentBlockStart(index, s.ToolUseOut(tool_use_id(event.id), event.name, {}))
            case ToolCallArgs():
                if event.fragment:
                    yield s.ContentBlockDelta(index, s.InputJsonDelta(event.fragment))
            case ChatFinished():
                reason, sequence = stop_reason(event, stop_sequences)
                if open_kind is not None:
                    yield s.ContentBlockStop(index)
                    open_kind = None
                yield s.MessageDelta(s.MessageDeltaBody(reason, sequence), usage_out(event.usage), context)
                yield s.MessageStop()
                return


def sse(event: s.StreamEvent) -> bytes:
    """One SSE record; its `event:` line is the payload's `type`."""
    name = type(event).__struct_config__.tag
    return b"event: " + str(name).encode() + b"\ndata: " + json_dumps(event) + b"\n\n"


async def sse_stream(mid: str, model: str, input_tokens: int, events: AsyncGenerator[ChatEvent | s.Ping, None],
                     stop_sequences: tuple[str, ...],
                     context: dict[str, Any] | UnsetType = UNSET) -> AsyncIterator[bytes]:
    """The stream as bytes. Headers are sent by now: a failure goes out in-band as an `error` event.
    Ending, however it ends, closes `events` (which aborts the generation if it is still running)."""
    try:
        async for event in stream_events(mid, model, input_tokens, events, stop_sequences, context):
            yield sse(event)
    except Exception as exc:  # noqa: BLE001  # every failure, typed or not, is reported (as_service_error logs)
        yield sse(error_body(as_service_error(exc)))
    finally:
        await events.aclose()
