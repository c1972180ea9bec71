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
from runtime.types import (
    ChatEvent,
    ChatFinished,
    FinishReason,
    Logprobs,
    PromptLogprobs,
    TextDelta,
    TokenIds,
    TokenLogprob,
    ToolCallArgs,
    ToolCallStart,
    Usage,
)

log = logging.getLogger(__name__)


def finish_reason(finished: ChatFinished) -> str:
    if finished.reason is FinishReason.ABORT:
        raise EngineUnavailable("The request was aborted because the server is shutting down.")
    return finished.reason.value


def usage_out(usages: list[Usage], n: int | None = None) -> s.UsageOut:
    """One response's usage over its choices, in index order: each prompt counted once (as OpenAI does),
    outputs summed. `n`: choices per prompt in a batch of completion prompts (prompt-major); None: all the
    choices answer one prompt."""
    per_prompt = usages[:: n or len(usages)]
    prompt = sum(u.prompt_tokens for u in per_prompt)
    cached = sum(u.cached_tokens for u in per_prompt)
    completion = sum(u.completion_tokens for u in usages)
    return s.UsageOut(prompt, completion, prompt + completion, s.PromptTokensDetails(cached))


def _finished(collected: list[Collected]) -> list[ChatFinished]:
    out = [c.finished for c in collected]
    assert all(f is not None for f in out)
    return out  # type: ignore[return-value]


# -- logprobs in OpenAI's two shapes ---------------------------------------------------------------------------


def _top(entry: TokenLogprob) -> s.TopLogprobOut:
    return s.TopLogprobOut(entry.token, entry.logprob, list(entry.data))


def chat_logprobs(entries: list[TokenLogprob]) -> s.ChoiceLogprobs:
    return s.ChoiceLogprobs([s.TokenLogprobOut(e.token, e.logprob, list(e.data), [_top(t) for t in e.top])
                             for e in entries])


def completion_logprobs(entries: list[TokenLogprob], text_offset: int = 0, *,
                        prompt: bool = False) -> s.CompletionLogprobs:
    """`text_offset`: where the first entry's token starts in the choice's text (streamed chunks go on).
    `prompt`: the entries start with the (echoed) prompt's first token, which has no logprob: null."""
    offsets = []
    for e in entries:
        offsets.append(text_offset)
        text_offset += len(e.token)
    # Asked for 0 alternatives, each position still names its own token, as vLLM does.
    top: list[dict[str, float] | None] = [{t.token: t.logprob for t in e.top} or {e.token: e.logprob}
                                          for e in entries]
    values: list[float | None] = [e.logprob for e in entries]
    if prompt and entries:
        top[0] = values[0] = None
    return s.CompletionLogprobs([e.token for e in entries], values, top, offsets)


def prompt_logprobs_out(entries: list[TokenLogprob]) -> s.PromptLogprobsOut:
    """vLLM's prompt_logprobs: per prompt position {token id: {logprob, rank, decoded_token}} for the prompt's
    own token and the alternatives; null for the first token. A rank past the alternatives is their count + 1
    (the engines rank no further)."""
    out: s.PromptLogprobsOut = [None]
    for e in entries[1:]:
        ranks = {t.id: rank for rank, t in enumerate(e.top, 1)}
        position = {str(e.id): s.PromptLogprobOut(e.logprob, ranks.get(e.id, len(e.top) + 1), e.token)}
        for rank, t in enumerate(e.top, 1):
            position.setdefault(str(t.id), s.PromptLogprobOut(t.logprob, rank, t.token))
        out.append(position)
    return out


@dataclass
class Collected:
    text: list[str] = field(default_factory=list)
    calls: list[s.ToolCallOut] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # None: not asked for
    prompt_logprobs: list[TokenLogprob] | None = None  # completions with echo: the prompt's
    token_ids: list[int] = field(default_factory=list)  # with return_token_ids
    finished: ChatFinished | None = None


async def collect(events: AsyncIterator[ChatEvent]) -> Collected:
    out = Collected()
    arguments: list[list[str]] = []
    async for event in events:
        match event:
            case TextDelta():
                out.text.append(event.text)
            case Logprobs():
                if out.logprobs is None:
                    out.logprobs = []
                out.logprobs.extend(event.tokens)
            case PromptLogprobs():
                out.prompt_logprobs = list(event.tokens)
            case TokenIds():
                out.token_ids.extend(event.ids)
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


def chat_completion(rid: str, model: str, collected: list[Collected],
                    prompt_ids: list[int] | None = None) -> s.ChatCompletion:
    """`prompt_ids`: with return_token_ids, the prompt's ids (and each choice gets its own). The prompt's
    logprobs (vLLM's prompt_logprobs) when the engine sent them."""
    choices = []
    for index, (one, finished) in enumerate(zip(collected, _finished(collected))):
        text = "".join(one.text)
        message = s.ChatMessageOut(content=text if text or not one.calls else None)
        if one.calls:
            message.tool_calls = one.calls
        logprobs = chat_logprobs(one.logprobs) if one.logprobs is not None else None
        choices.append(s.ChatChoice(index, message, finish_reason(finished), logprobs,
                                    s.UNSET if prompt_ids is None else one.token_ids))
    usage = usage_out([f.usage for f in _finished(collected)])
    scored = collected[0].prompt_logprobs
    return s.ChatCompletion(rid, int(time.time()), model, choices, usage,
                            prompt_token_ids=s.UNSET if prompt_ids is None else prompt_ids,
                            prompt_logprobs=s.UNSET if scored is None else prompt_logprobs_out(scored))


def _echoed_logprobs(one: Collected, echoed: bool) -> s.CompletionLogprobs | None:
    if echoed and one.prompt_logprobs is not None:
        return completion_logprobs(one.prompt_logprobs + (one.logprobs or []), prompt=True)
    return completion_logprobs(one.logprobs) if one.logprobs is not None else None


def completion(rid: str, model: str, collected: list[Collected], echo: list[str] | None = None,
               n: int = 1, prompt_ids: list[list[int]] | None = None,
               prompt_logprobs: bool = False) -> s.Completion:
    """`echo`: each choice's prompt text, put before its text (its tokens lead the logprobs when scored).
    `n`: choices per prompt (a batch of prompts is prompt-major: choice i belongs to prompt i // n).
    `prompt_ids`: with return_token_ids, each choice's prompt ids. `prompt_logprobs`: vLLM's, per choice."""
    finished = _finished(collected)
    choices = [s.CompletionChoice(i, (echo[i] if echo else "") + "".join(c.text), finish_reason(f),
                                  _echoed_logprobs(c, echo is not None), *((s.UNSET, s.UNSET) if prompt_ids is None
                                                                           else (prompt_ids[i], c.token_ids)))
               for i, (c, f) in enumerate(zip(collected, finished))]
    for choice, c in zip(choices, collected):
        if prompt_logprobs and c.prompt_logprobs is not None:
            choice.prompt_logprobs = prompt_logprobs_out(c.prompt_logprobs)
    return s.Completion(rid, int(time.time()), model, choices, usage=usage_out([f.usage for f in finished], n))


def sse(payload: object) -> bytes:
    return b"data: " + json_dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"


async def chat_chunks(rid: str, model: str, events: AsyncIterator[tuple[int, ChatEvent]], choices: int,
                      include_usage: bool, prompt_ids: list[int] | None = None) -> AsyncIterator[bytes]:
    """`events` tagged with their choice's index (several when n > 1). `prompt_ids`: with return_token_ids,
    sent on the first chunk; each chunk then carries its choice's token ids since its last one."""
    created = int(time.time())
    usages: list[Usage] = []
    # Logprobs and token ids come ahead of their text (which may be held back): each choice's ride on its next
    # chunk.
    pending: dict[int, list[TokenLogprob]] = {}
    pending_ids: dict[int, list[int]] = {}
    first = [True]

    def chunk(index: int, delta: s.ChatDelta, reason: str | None = None, *, with_logprobs: bool = True) -> bytes:
        entries = pending.pop(index, None) if with_logprobs else None
        logprobs = chat_logprobs(entries) if entries else None
        choice = s.ChatChunkChoice(index, delta, reason, logprobs)
        c = s.ChatCompletionChunk(rid, created, model, [choice])
        if prompt_ids is not None:
            choice.token_ids = pending_ids.pop(index, []) if with_logprobs else []
            if first[0]:
                c.prompt_token_ids, first[0] = prompt_ids, False
        if include_usage:
            c.usage = None
        return sse(c)

    # Each choice's first delta carries the role. As OpenAI does, its content is "" when text follows and null
    # when the choice starts with a call (an empty string there makes @ai-sdk/openai open an empty text part).
    started: set[int] = set()

    def role(index: int) -> bytes:  # the role alone, before a choice's first text (its logprobs wait for that)
        started.add(index)
        return chunk(index, s.ChatDelta(role="assistant", content=""), with_logprobs=False)

    try:
        async with aclosing(events):  # a client gone mid-stream ends the run now, not at garbage collection
            async for index, event in events:
                match event:
                    case Logprobs():
                        pending.setdefault(index, []).extend(event.tokens)
                    case TokenIds():
                        pending_ids.setdefault(index, []).extend(event.ids)
                    case TextDelta():
                        if index not in started:
                            yield role(index)
                        yield chunk(index, s.ChatDelta(content=event.text))
                    case ToolCallStart():
                        call = s.ToolCallDelta(event.index, event.id, "function", s.FunctionDelta(event.name, ""))
                        if index not in started:  # role and call in one delta, as OpenAI sends them
                            started.add(index)
                            yield chunk(index, s.ChatDelta(role="assistant", content=None, tool_calls=[call]))
                        else:
                            yield chunk(index, s.ChatDelta(tool_calls=[call]))
                    case ToolCallArgs():
                        call = s.ToolCallDelta(event.index, function=s.FunctionDelta(arguments=event.fragment))
                        yield chunk(index, s.ChatDelta(tool_calls=[call]))
                    case ChatFinished():
                        if index not in started:
                            yield role(index)
                        yield chunk(index, s.ChatDelta(), finish_reason(event))
                        usages.append(event.usage)
        if include_usage:
            yield sse(s.ChatCompletionChunk(rid, created, model, [], usage=usage_out(usages)))
    except Exception as exc:  # headers are sent: report in-band, as vLLM and SGLang do
        yield sse(error_body(as_service_error(exc)))
    yield DONE


async def completion_chunks(rid: str, model: str, events: AsyncIterator[tuple[int, ChatEvent]],
                            include_usage: bool, echo: list[str] | None = None, n: int = 1,
                            prompt_ids: list[list[int]] | None = None) -> AsyncIterator[bytes]:
    """`echo`: each choice's prompt text, sent as its first text (with the prompt's logprobs when scored).
    `n`: choices per prompt, as in completion(). `prompt_ids`: with return_token_ids, each choice's prompt
    ids, sent on its first chunk; each chunk then carries the token ids since its choice's last one."""
    created = int(time.time())
    usage = None if include_usage else s.UNSET
    usages: dict[int, Usage] = {}
    pending: dict[int, list[TokenLogprob]] = {}  # as in chat_chunks
    offsets: dict[int, int] = {}  # each choice's text_offset so far
    pending_ids: dict[int, list[int]] = {}
    started: set[int] = set()

    def choice(index: int, text: str, reason: str | None, *, prompt: bool = False) -> s.CompletionChoice:
        entries = pending.pop(index, None)
        logprobs = None
        if entries:
            logprobs = completion_logprobs(entries, offsets.get(index, 0), prompt=prompt)
            offsets[index] = offsets.get(index, 0) + sum(len(e.token) for e in entries)
        out = s.CompletionChoice(index, text, reason, logprobs)
        if prompt_ids is not None:
            out.token_ids = pending_ids.pop(index, [])
            if index not in started:
                out.prompt_token_ids = prompt_ids[index]
        started.add(index)
        return out

    echoed: set[int] = set()

    def echo_chunk(index: int, prompt: bool = False) -> bytes:
        echoed.add(index)
        text = echo[index] if echo else ""
        return sse(s.Completion(rid, created, model, [choice(index, text, None, prompt=prompt)], usage=usage))

    try:
        async with aclosing(events):
            async for index, event in events:
                if isinstance(event, PromptLogprobs):  # comes first: the echo goes out with it
                    pending[index] = list(event.tokens)
                    yield echo_chunk(index, prompt=True)
                    continue
                if echo is not None and index not in echoed:
                    yield echo_chunk(index)
                if isinstance(event, Logprobs):
                    pending.setdefault(index, []).extend(event.tokens)
                elif isinstance(event, TokenIds):
                    pending_ids.setdefault(index, []).extend(event.ids)
                elif isinstance(event, TextDelta):
                    yield sse(s.Completion(rid, created, model, [choice(index, event.text, None)], usage=usage))
                elif isinstance(event, ChatFinished):
                    yield sse(s.Completion(rid, created, model, [choice(index, "", finish_reason(event))],
                                           usage=usage))
                    usages[index] = event.usage
        if include_usage:
            yield sse(s.Completion(rid, created, model, [], usage=usage_out([usages[i] for i in sorted(usages)], n)))
    except Exception as exc:
        yield sse(error_body(as_service_error(exc)))
    yield DONE
