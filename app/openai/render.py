"""Neutral results and events to OpenAI responses: the whole completion from the runs' ChatResults, and the
SSE chunk streams as StreamEncoders (app/streaming.py drives both)."""

from __future__ import annotations

import time

from app import sse
from app.openai import schemas as s
from app.openai.errors import error_body
from runtime.errors import ServiceError
from runtime.result import ChatResult
from runtime.types import (
    ChatEvent,
    ChatFinished,
    Logprobs,
    PromptLogprobs,
    ReasoningDelta,
    TextDelta,
    TokenIds,
    TokenLogprob,
    ToolCallArgs,
    ToolCallStart,
    Usage,
)


def usage_out(usages: list[Usage], n: int | None = None, *, chat: bool = False) -> s.UsageOut:
    """One response's usage over its choices, in index order: each prompt counted once (as OpenAI does),
    outputs summed. `n`: choices per prompt in a batch of completion prompts (prompt-major); None: all the
    choices answer one prompt. Chat also says how many of the output tokens were thinking."""
    per_prompt = usages[:: n or len(usages)]
    prompt = sum(u.prompt_tokens for u in per_prompt)
    cached = sum(u.cached_tokens for u in per_prompt)
    completion = sum(u.completion_tokens for u in usages)
    out = s.UsageOut(prompt, completion, prompt + completion, s.PromptTokensDetails(cached))
    if chat:
        out.completion_tokens_details = s.CompletionTokensDetails(sum(u.reasoning_tokens for u in usages))
    return out


def _finished(results: list[ChatResult]) -> list[ChatFinished]:
    out = [r.finished for r in results]
    assert all(f is not None for f in out)  # the run owner hands over only finished results
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


def _calls(result: ChatResult) -> list[s.ToolCallOut]:
    return [s.ToolCallOut(c.id, s.FunctionCallOut(c.name, c.arguments)) for c in result.calls]


def chat_completion(rid: str, model: str, results: list[ChatResult],
                    prompt_ids: list[int] | None = None) -> s.ChatCompletion:
    """`prompt_ids`: with return_token_ids, the prompt's ids (and each choice gets its own). The prompt's
    logprobs (vLLM's prompt_logprobs) when the engine sent them, else null as vLLM answers."""
    choices = []
    for index, (one, finished) in enumerate(zip(results, _finished(results))):
        text, calls = one.text, _calls(one)
        message = s.ChatMessageOut(content=text if text or not calls else None)
        if calls:
            message.tool_calls = calls
        if one.reasoning:
            message.reasoning_content = message.reasoning = one.reasoning
        logprobs = chat_logprobs(one.logprobs) if one.logprobs is not None else None
        choices.append(s.ChatChoice(index, message, finished.reason.value, logprobs,
                                    s.UNSET if prompt_ids is None else one.token_ids))
    usages = [f.usage for f in _finished(results)]
    usage = usage_out(usages, len(usages), chat=True)  # every choice has the same prompt
    scored = results[0].prompt_logprobs
    return s.ChatCompletion(rid, int(time.time()), model, choices, usage,
                            prompt_token_ids=s.UNSET if prompt_ids is None else prompt_ids,
                            prompt_logprobs=None if scored is None else prompt_logprobs_out(scored))


def _echoed_logprobs(one: ChatResult, echoed: bool) -> s.CompletionLogprobs | None:
    if echoed and one.prompt_logprobs is not None:
        return completion_logprobs(one.prompt_logprobs + (one.logprobs or []), prompt=True)
    return completion_logprobs(one.logprobs) if one.logprobs is not None else None


def completion(rid: str, model: str, results: list[ChatResult], echo: list[str] | None = None,
               n: int = 1, prompt_ids: list[list[int]] | None = None,
               prompt_logprobs: bool = False) -> s.Completion:
    """`echo`: each choice's prompt text, put before its text (its tokens lead the logprobs when scored).
    `n`: choices per prompt (a batch of prompts is prompt-major: choice i belongs to prompt i // n).
    `prompt_ids`: with return_token_ids, each choice's prompt ids. `prompt_logprobs`: vLLM's, per choice."""
    finished = _finished(results)
    choices = [s.CompletionChoice(i, (echo[i] if echo else "") + r.text, f.reason.value,
                                  _echoed_logprobs(r, echo is not None))
               for i, (r, f) in enumerate(zip(results, finished))]
    for i, (choice, r) in enumerate(zip(choices, results)):
        if prompt_ids is not None:
            choice.prompt_token_ids, choice.token_ids = prompt_ids[i], r.token_ids
        # null when not asked for, as vLLM answers (its clients read the field unconditionally)
        choice.prompt_logprobs = None
        if prompt_logprobs and r.prompt_logprobs is not None:
            choice.prompt_logprobs = prompt_logprobs_out(r.prompt_logprobs)
    return s.Completion(rid, int(time.time()), model, choices, usage=usage_out([f.usage for f in finished], n))


# -- the chunk streams (driven by app/streaming.py) ---------------------------------------------------------

DONE = b"data: [DONE]\n\n"


class _Chunks:
    """What both OpenAI streams share: keep-alives as SSE comments, in-band errors, the closing [DONE]."""

    def __init__(self, rid: str, model: str, include_usage: bool) -> None:
        self.rid, self.model, self.include_usage = rid, model, include_usage
        self.created = int(time.time())
        self.usages: list[Usage] = []
        # Logprobs and token ids come ahead of their text (which may be held back): each choice's ride on its
        # next chunk.
        self.pending: dict[int, list[TokenLogprob]] = {}
        self.pending_ids: dict[int, list[int]] = {}
        # vLLM's continuous_usage_stats: every chunk's usage so far (the tokens counted from TokenIds events)
        self.continuous_prompt_tokens: int | None = None
        self.generated = 0
        self.unsent: dict[int, int] = {}  # each choice's tokens counted but not yet carried by a chunk

    def chunk_usage(self, index: int | None = None) -> s.UsageOut | None:
        """What a chunk's `usage` holds with include_usage: null, or with continuous_usage_stats the usage so far.
        `index`: a chunk that carries none of that choice's new tokens (the role alone) counts without them."""
        prompt = self.continuous_prompt_tokens
        if prompt is None:
            return None
        generated = self.generated - (self.unsent.get(index, 0) if index is not None else 0)
        return s.UsageOut(prompt, generated, prompt + generated, s.PromptTokensDetails(0))

    def count(self, event: TokenIds, index: int) -> None:
        self.generated += len(event.ids)
        self.unsent[index] = self.unsent.get(index, 0) + len(event.ids)
        self.pending_ids.setdefault(index, []).extend(event.ids)

    # A choice's last text (or arguments) chunk and its finish, when they arrive in one batch, go out as one
    # chunk, as vLLM and SGLang send them (their clients and tests read the last text from the chunk that
    # carries finish_reason); a finish that arrives alone gets a chunk of its own, as OpenAI sends every finish.
    # Which it is depends on arrival: a max_tokens finish comes with its token on the CPU engine (one hand-off per
    # step); an end-of-turn token's usually alone, unless the client reads slower than tokens come. So each such
    # chunk is held until the next event or the batch's end, never longer.
    held: tuple[int, s.ChatCompletionChunk | s.Completion] | None = None

    def _hold(self, index: int, chunk: s.ChatCompletionChunk | s.Completion) -> bytes:
        out = self.flush()
        self.held = (index, chunk)
        return out

    def _finish_held(self, index: int, reason: str) -> bytes | None:
        """The held chunk of this choice with its finish_reason, or None if none is held for it."""
        if self.held is None or self.held[0] != index:
            return None
        chunk = self.held[1]
        self.held = None
        chunk.choices[0].finish_reason = reason
        return sse.data(chunk)

    def flush(self) -> bytes:
        if self.held is None:
            return b""
        chunk, self.held = self.held[1], None
        return sse.data(chunk)

    def start(self) -> bytes:
        return b""

    def keep_alive(self) -> bytes:
        return self.flush() + sse.COMMENT

    def error(self, err: ServiceError) -> bytes:  # as vLLM and SGLang report a failure once streaming
        return self.flush() + sse.data(error_body(err)) + DONE


class ChatChunks(_Chunks):
    """chat.completion.chunk records, each choice's first delta carrying the role. As OpenAI does, its content
    is "" when text follows and null when the choice starts with a call (an empty string there makes
    @ai-sdk/openai open an empty text part)."""

    def __init__(self, rid: str, model: str, include_usage: bool, prompt_ids: list[int] | None = None) -> None:
        """`prompt_ids`: with return_token_ids, sent on the first chunk; each chunk's choice then carries the
        token ids generated since its previous one."""
        super().__init__(rid, model, include_usage)
        self.started: set[int] = set()
        self.prompt_ids, self.first = prompt_ids, True

    def _chunk(self, index: int, delta: s.ChatDelta, reason: str | None = None, *,
               with_logprobs: bool = True) -> bytes:
        return self.flush() + sse.data(self._build(index, delta, reason, with_logprobs=with_logprobs))

    def _build(self, index: int, delta: s.ChatDelta, reason: str | None = None, *,
               with_logprobs: bool = True) -> s.ChatCompletionChunk:
        entries = self.pending.pop(index, None) if with_logprobs else None
        logprobs = chat_logprobs(entries) if entries else None
        choice = s.ChatChunkChoice(index, delta, reason, logprobs)
        c = s.ChatCompletionChunk(self.rid, self.created, self.model, [choice])
        if self.prompt_ids is not None:
            choice.token_ids = self.pending_ids.pop(index, []) if with_logprobs else []
            if self.first:
                c.prompt_token_ids, self.first = self.prompt_ids, False
        if self.include_usage:
            c.usage = self.chunk_usage(None if with_logprobs else index)
        if with_logprobs:
            self.unsent[index] = 0
        return c

    def _role(self, index: int) -> bytes:  # the role alone, before a choice's first text (its logprobs wait)
        self.started.add(index)
        return self._chunk(index, s.ChatDelta(role="assistant", content=""), with_logprobs=False)

    def event(self, index: int, event: ChatEvent) -> bytes:
        # Whatever writes a chunk (_chunk, _role, _hold) sends a held one first; an event that writes none
        # sends it too, so a token's logprobs or ids never ride on the chunk of the text before it.
        match event:
            case Logprobs():
                self.pending.setdefault(index, []).extend(event.tokens)
            case TokenIds():
                self.count(event, index)
            case TextDelta():
                role = self._role(index) if index not in self.started else b""
                return role + self._hold(index, self._build(index, s.ChatDelta(content=event.text)))
            case ReasoningDelta():  # under both names clients read (SGLang's, vLLM's)
                role = self._role(index) if index not in self.started else b""
                return role + self._chunk(index, s.ChatDelta(reasoning_content=event.text, reasoning=event.text))
            case ToolCallStart():
                call = s.ToolCallDelta(event.index, event.id, "function", s.FunctionDelta(event.name, ""))
                if index not in self.started:  # role and call in one delta, as OpenAI sends them
                    self.started.add(index)
                    return self._chunk(index, s.ChatDelta(role="assistant", content=None, tool_calls=[call]))
                return self._chunk(index, s.ChatDelta(tool_calls=[call]))
            case ToolCallArgs():
                call = s.ToolCallDelta(event.index, function=s.FunctionDelta(arguments=event.fragment))
                return self._hold(index, self._build(index, s.ChatDelta(tool_calls=[call])))
            case ChatFinished():
                self.usages.append(event.usage)
                joined = self._finish_held(index, event.reason.value)
                if joined is not None:
                    return joined
                role = self._role(index) if index not in self.started else b""
                return role + self._chunk(index, s.ChatDelta(), event.reason.value)
        return self.flush()

    def end(self) -> bytes:
        if not self.include_usage:
            return self.flush() + DONE
        return self.flush() + sse.data(s.ChatCompletionChunk(
            self.rid, self.created, self.model, [], usage=usage_out(self.usages, len(self.usages), chat=True))) + DONE


class CompletionChunks(_Chunks):
    """text_completion records; `echo`: each choice's prompt text, sent as its first text (with the prompt's
    logprobs when scored); `n`: choices per prompt, as in completion()."""

    def __init__(self, rid: str, model: str, include_usage: bool, echo: list[str] | None = None,
                 n: int = 1, prompt_ids: list[list[int]] | None = None) -> None:
        """`prompt_ids`: with return_token_ids, each choice's, sent on its first chunk; each chunk then carries
        the token ids generated since its choice's previous one."""
        super().__init__(rid, model, include_usage)
        self.echo, self.n, self.prompt_ids = echo, n, prompt_ids
        self.started: set[int] = set()
        self.by_index: dict[int, Usage] = {}
        self.offsets: dict[int, int] = {}  # each choice's text_offset so far
        self.echoed: set[int] = set()

    def _choice(self, index: int, text: str, reason: str | None, *, prompt: bool = False) -> bytes:
        return self.flush() + sse.data(self._build(index, text, reason, prompt=prompt))

    def _build(self, index: int, text: str, reason: str | None, *, prompt: bool = False) -> s.Completion:
        entries = self.pending.pop(index, None)
        logprobs = None
        if entries:
            logprobs = completion_logprobs(entries, self.offsets.get(index, 0), prompt=prompt)
            self.offsets[index] = self.offsets.get(index, 0) + sum(len(e.token) for e in entries)
        choice = s.CompletionChoice(index, text, reason, logprobs)
        if self.prompt_ids is not None:
            choice.token_ids = self.pending_ids.pop(index, [])
            if index not in self.started:
                choice.prompt_token_ids = self.prompt_ids[index]
        self.started.add(index)
        usage = self.chunk_usage() if self.include_usage else s.UNSET
        return s.Completion(self.rid, self.created, self.model, [choice], usage=usage)

    def _echo(self, index: int, prompt: bool = False) -> bytes:
        self.echoed.add(index)
        return self._choice(index, self.echo[index] if self.echo else "", None, prompt=prompt)

    def event(self, index: int, event: ChatEvent) -> bytes:
        if isinstance(event, ChatFinished):
            self.by_index[index] = event.usage
            joined = self._finish_held(index, event.reason.value)
            if joined is not None:
                return joined
        if isinstance(event, PromptLogprobs):  # comes first: the echo goes out with it
            self.pending[index] = list(event.tokens)
            return self._echo(index, prompt=True)
        # (the echo, like every chunk written, sends a held one first; without one, the held one goes now)
        out = self._echo(index) if self.echo is not None and index not in self.echoed else self.flush()
        if isinstance(event, Logprobs):
            self.pending.setdefault(index, []).extend(event.tokens)
        elif isinstance(event, TokenIds):
            self.count(event, index)
        elif isinstance(event, TextDelta):
            out += self._hold(index, self._build(index, event.text, None))
        elif isinstance(event, ChatFinished):
            out += self._choice(index, "", event.reason.value)
        return out

    def end(self) -> bytes:
        if not self.include_usage:
            return self.flush() + DONE
        usage = usage_out([self.by_index[i] for i in sorted(self.by_index)], self.n)
        return self.flush() + sse.data(s.Completion(self.rid, self.created, self.model, [], usage=usage)) + DONE
