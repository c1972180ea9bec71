"""Neutral chat events to SGLang's /generate answers: one output (a list for a batch), or an SSE stream whose
chunks carry each output's whole text so far, as SGLang streams without incremental_streaming_output."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from app.errors import as_service_error
from app.openai.errors import error_body
from app.openai.render import DONE, Collected, sse
from app.sglang_native import schemas as s
from runtime.types import ChatEvent, ChatFinished, FinishReason, TextDelta, TokenIds


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


def outputs(rids: list[str], batch: bool, collected: list[Collected]) -> s.GenerateOut | list[s.GenerateOut]:
    out = []
    for rid, one in zip(rids, collected):
        assert one.finished is not None
        out.append(s.GenerateOut("".join(one.text), one.token_ids, _meta(rid, one.finished, 0, 0)))
    return out if batch else out[0]


async def chunks(rids: list[str], prompt_tokens: list[int], batch: bool,
                 events: AsyncIterator[tuple[int, ChatEvent]]) -> AsyncIterator[bytes]:
    texts = [""] * len(rids)
    ids: list[list[int]] = [[] for _ in rids]

    def chunk(index: int, finished: ChatFinished | None = None) -> bytes:
        meta = _meta(rids[index], finished, prompt_tokens[index], len(ids[index]))
        return sse(s.GenerateOut(texts[index], ids[index], meta, index if batch else s.UNSET))

    try:
        async with aclosing(events):
            async for index, event in events:
                match event:
                    case TokenIds():
                        ids[index].extend(event.ids)
                    case TextDelta():
                        texts[index] += event.text
                        yield chunk(index)
                    case ChatFinished():
                        yield chunk(index, event)
    except Exception as exc:  # headers are sent: report in-band, as SGLang does
        yield sse(error_body(as_service_error(exc)))
    yield DONE
