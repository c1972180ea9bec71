"""Neutral chat events to OpenAI responses: the aggregated completion, and the SSE chunk stream."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

from app.decoding import json_dumps
from app.errors import as_service_error
from app.openai import schemas as s
from app.openai.errors import error_body
from runtime.errors import EngineUnavailable
from runtime.types import ChatEvent, ChatFinished, FinishReason, TextDelta, ToolCallArgs, ToolCallStart, Usage

log = logging.getLogger(__name__)


def finish_reason(finished: ChatFinished) -> str:
    if finished.reason is FinishReason.ABORT:
        raise EngineUnavailable("The request was aborted because the server is shutting down.")
    return finished.reason.value


def usage_out(usage: Usage) -> s.UsageOut:
    return s.UsageOut(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens,
                      s.PromptTokensDetails(usage.cached_tokens))


@dataclass
class Collected:
    text: list[str] = field(default_factory=list)
    calls: list[s.ToolCallOut] = field(default_factory=list)
    finished: ChatFinished | None = None


async def collect(events: AsyncIterator[ChatEvent]) -> Collected:
    out = Collected()
    arguments: list[list[str]] = []
    async for event in events:
        match event:
            case TextDelta():
                out.text.append(event.text)
            case ToolCallStart():
                out.calls.append(s.ToolCallOut(event.id, s.FunctionCallOut(event.name, "")))
                arguments.append([])
            case ToolCallArgs():
                arguments[event.index].append(event.fragment)
            case ChatFinished():
                out.finished = event
    assert out.finished is not None
    # Only complete calls are returned: one cut off by max_tokens would not parse.
    out.calls = out.calls[: out.finished.tool_calls]
    for call, parts in zip(out.calls, arguments):
        call.function.arguments = "".join(parts)
    return out


def chat_completion(rid: str, model: str, collected: Collected) -> s.ChatCompletion:
    finished = collected.finished
    assert finished is not None
    text = "".join(collected.text)
    message = s.ChatMessageOut(content=text if text or not collected.calls else None)
    if collected.calls:
        message.tool_calls = collected.calls
    choice = s.ChatChoice(0, message, finish_reason(finished))
    return s.ChatCompletion(rid, int(time.time()), model, [choice], usage_out(finished.usage))


def completion(rid: str, model: str, collected: Collected) -> s.Completion:
    finished = collected.finished
    assert finished is not None
    choice = s.CompletionChoice(0, "".join(collected.text), finish_reason(finished))
    return s.Completion(rid, int(time.time()), model, [choice], usage=usage_out(finished.usage))


def sse(payload: object) -> bytes:
    return b"data: " + json_dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"


async def chat_chunks(rid: str, model: str, events: AsyncIterator[ChatEvent], include_usage: bool) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: s.ChatDelta, reason: str | None = None) -> bytes:
        c = s.ChatCompletionChunk(rid, created, model, [s.ChatChunkChoice(0, delta, reason)])
        if include_usage:
            c.usage = None
        return sse(c)

    yield chunk(s.ChatDelta(role="assistant", content=""))
    try:
        async with aclosing(events):  # a client gone mid-stream ends the run now, not at garbage collection
            async for event in events:
                match event:
                    case TextDelta():
                        yield chunk(s.ChatDelta(content=event.text))
                    case ToolCallStart():
                        call = s.ToolCallDelta(event.index, event.id, "function", s.FunctionDelta(event.name, ""))
                        yield chunk(s.ChatDelta(tool_calls=[call]))
                    case ToolCallArgs():
                        call = s.ToolCallDelta(event.index, function=s.FunctionDelta(arguments=event.fragment))
                        yield chunk(s.ChatDelta(tool_calls=[call]))
                    case ChatFinished():
                        yield chunk(s.ChatDelta(), finish_reason(event))
                        if include_usage:
                            yield sse(s.ChatCompletionChunk(rid, created, model, [], usage=usage_out(event.usage)))
    except Exception as exc:  # headers are sent: report in-band, as vLLM and SGLang do
        yield sse(error_body(as_service_error(exc)))
    yield DONE


async def completion_chunks(rid: str, model: str, events: AsyncIterator[ChatEvent], include_usage: bool) -> AsyncIterator[bytes]:
    created = int(time.time())
    usage = None if include_usage else s.UNSET
    try:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta):
                    yield sse(s.Completion(rid, created, model, [s.CompletionChoice(0, event.text, None)], usage=usage))
                elif isinstance(event, ChatFinished):
                    choice = s.CompletionChoice(0, "", finish_reason(event))
                    yield sse(s.Completion(rid, created, model, [choice], usage=usage))
                    if include_usage:
                        yield sse(s.Completion(rid, created, model, [], usage=usage_out(event.usage)))
    except Exception as exc:
        yield sse(error_body(as_service_error(exc)))
    yield DONE
