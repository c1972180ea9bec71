"""An engine that plays scripts, for fast in-process tests of the stream path (tests/test_stream_lifecycle.py):
the server loads it with `--engine tests.scripted_engine:ScriptedEngine`, like the bench's replay engine.

A script is a list of steps: a str is a text delta (one token), a tuple of str tokens the engine generates
before it next looks for an abort (as a real engine runs on while an abort travels to it), a float a pause in
seconds (a long prefill, a slow decode), a FinishReason the Finished event (usage counted from the steps), an
Exception a failure.
A script without a FinishReason ends with LENGTH. Tests queue scripts in SCRIPTS, one per generation, in
order; with none queued a generation plays DEFAULT. Each engine records what it ran, what was aborted and
which generations ended, for tests to read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from runtime.engines import EngineConfig
from runtime.model import ModelInfo
from runtime.types import EngineEvent, EngineRequest, Finished, FinishReason, TextDelta, Usage

Step = str | tuple[str, ...] | float | FinishReason | Exception
DEFAULT: list[Step] = ["Hello", " there", FinishReason.STOP]
SCRIPTS: deque[list[Step]] = deque()


class ScriptedEngine:
    latest: ScriptedEngine | None = None  # the engine the test's server made

    def __init__(self, config: EngineConfig, model: ModelInfo) -> None:
        self.config = config
        self.requests: list[EngineRequest] = []
        self.aborted: list[str] = []
        self.ended: list[str] = []  # generations whose iterator finished or was closed
        self._abort_events: dict[str, asyncio.Event] = {}
        ScriptedEngine.latest = self

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for event in self._abort_events.values():
            event.set()

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        script = SCRIPTS.popleft() if SCRIPTS else DEFAULT
        self.requests.append(request)
        aborted = self._abort_events.setdefault(request.rid, asyncio.Event())
        emitted = 0
        prompt = len(request.input_ids)
        try:
            for step in script:
                if aborted.is_set():
                    break
                if isinstance(step, str | tuple):
                    for token in (step,) if isinstance(step, str) else step:
                        emitted += 1
                        yield TextDelta(token, 1)
                elif isinstance(step, float):
                    try:
                        await asyncio.wait_for(aborted.wait(), step)
                    except TimeoutError:
                        pass
                elif isinstance(step, FinishReason):
                    yield Finished(step, Usage(prompt, emitted))
                    return
                else:
                    raise step
            reason = FinishReason.ABORT if aborted.is_set() else FinishReason.LENGTH
            yield Finished(reason, Usage(prompt, emitted))
        finally:
            self._abort_events.pop(request.rid, None)
            self.ended.append(request.rid)

    async def abort(self, rid: str) -> None:
        self.aborted.append(rid)
        if rid in self._abort_events:
            self._abort_events[rid].set()
