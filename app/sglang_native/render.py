"""Neutral results and events to SGLang's /generate answers: one output (a list for a batch), or an SSE stream
whose records carry each output's whole text so far, as SGLang streams without incremental_streaming_output."""

from __future__ import annotations

from app import sse
from app.openai.errors import error_body
from app.sglang_native import schemas as s
from runtime.errors import ServiceError
from runtime.result import ChatResult
from runtime.types import ChatEvent, ChatFinished, FinishReason, TextDelta, TokenIds

DONE = b"data: [DONE]\n\n"


def finish_reason(finished: ChatFinished) -> s.NativeFinishReason:
    if finished.reason is FinishReason.LENGTH:
        return s.NativeFinishReason("length", length=finished.usage.completion_tokens)
    if finished.reason is FinishReason.ABORT:
        return s.NativeFinishReason("abort")
    return s.NativeFinishReason("stop", matched=finished.matched_stop)


def _meta(rid: str, finished: ChatFinished | None, prompt_tokens: int, completion_tokens: int) -> s.MetaInfo:
    if finished is not None:
        u = finished.usage
        return s.MetaInfo(rid, finish_reason(finished), u.prompt_tokens, u.completion_tokens, u.cached_tokens)
    return s.MetaInfo(rid, None, prompt_tokens, completion_tokens, 0)


def outputs(rids: list[str], batch: bool, results: list[ChatResult]) -> s.GenerateOut | list[s.GenerateOut]:
    out = [s.GenerateOut(r.text, r.token_ids, _meta(rid, r.finished, 0, 0)) for rid, r in zip(rids, results)]
    return out if batch else out[0]


class GenerateChunks:
    """The StreamEncoder (app/streaming.py) of /generate: a record per text delta and one at each finish."""

    def __init__(self, rids: list[str], prompt_tokens: list[int], batch: bool) -> None:
        self.rids, self.prompt_tokens, self.batch = rids, prompt_tokens, batch
        self.texts = [""] * len(rids)
        self.ids: list[list[int]] = [[] for _ in rids]

    def _record(self, index: int, finished: ChatFinished | None = None) -> bytes:
        meta = _meta(self.rids[index], finished, self.prompt_tokens[index], len(self.ids[index]))
        return sse.data(s.GenerateOut(self.texts[index], self.ids[index], meta, index if self.batch else s.UNSET))

    def start(self) -> bytes:
        return b""

    def event(self, index: int, event: ChatEvent) -> bytes:
        match event:
            case TokenIds():
                self.ids[index].extend(event.ids)
            case TextDelta():
                self.texts[index] += event.text
                return self._record(index)
            case ChatFinished():
                return self._record(index, event)
        return b""

    def flush(self) -> bytes:
        return b""

    def keep_alive(self) -> bytes:
        return sse.COMMENT

    def end(self) -> bytes:
        return DONE

    def error(self, err: ServiceError) -> bytes:  # headers are sent: in-band, as SGLang reports it
        return sse.data(error_body(err)) + DONE
