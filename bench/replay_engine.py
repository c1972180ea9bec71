"""A bench-only engine with zero model cost, for measuring the HTTP stack alone.

`python -m app --engine bench.replay_engine:ReplayEngine --model <any model dir>` serves it: every request
gets exactly `max_new_tokens` deltas of the same text (capped at MAX_TOKENS), emitted as fast as the event
loop takes them. The model directory is only read for its tokenizer and config (the app renders chat
templates and counts prompt tokens as usual); no weights are loaded. Never use it to serve anything real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from runtime.engines import EngineConfig
from runtime.errors import EngineUnavailable
from runtime.model import ModelInfo
from runtime.types import EngineEvent, EngineRequest, Finished, FinishReason, TextDelta, Usage

TOKEN_TEXT = " token"
MAX_TOKENS = 4096  # requests without max_tokens get the whole window as budget; a replay needs a bound


class ReplayEngine:
    def __init__(self, config: EngineConfig, model: ModelInfo) -> None:
        self._config = config
        self._model = model
        self._aborted: set[str] = set()
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def close(self) -> None:
        self._running = False

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        if not self._running:
            raise EngineUnavailable("The engine is not running.")
        count = min(request.sampling.max_new_tokens or MAX_TOKENS, MAX_TOKENS)
        delta = TextDelta(TOKEN_TEXT, 1)
        try:
            for emitted in range(count):
                if request.rid in self._aborted or not self._running:
                    yield Finished(FinishReason.ABORT, Usage(len(request.input_ids), emitted))
                    return
                yield delta
                # One loop turn per token, as when a real engine's tokens arrive from its queue: concurrent
                # streams interleave instead of one stream writing all its chunks at once.
                await asyncio.sleep(0)
            yield Finished(FinishReason.LENGTH, Usage(len(request.input_ids), count))
        finally:
            self._aborted.discard(request.rid)

    async def abort(self, rid: str) -> None:
        self._aborted.add(rid)
