"""The engine's life inside the app: loaded in the background (so /health can say 503 meanwhile), warmed up
with one generation, requests admitted through a bounded queue, drained and closed on shutdown.

Shutdown, in order (app/__main__.py calls begin_shutdown() on SIGTERM, before uvicorn closes connections):
1. Queued and new requests get EngineUnavailable (503; Anthropic's 529).
2. Running generations get --shutdown-timeout seconds to finish.
3. Those still running are aborted, and their streams end with EngineUnavailable in their dialect (OpenAI:
   an error object then `[DONE]`; Anthropic: an `error` event), so no client sees a stream simply cut.
4. Once uvicorn has no connection left, the lifespan's stop() closes the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Any

from app.anthropic.signature import ThinkingSigner
from app.metrics import Metrics
from app.settings import Settings
from runtime.admission import Admission, Lease
from runtime.engines import EngineConfig, create_engine, resolve_engine_name
from runtime.errors import EngineUnavailable
from runtime.model import load_model_info, resolve_model_path
from runtime.service import GenerationService, PreparedRequest
from runtime.reasoning.formats import select_reasoning_format
from runtime.tools.registry import select_format
from runtime.types import SamplingParams

log = logging.getLogger(__name__)

CPU_RUNNING_CAP = 16  # the CPU engine's default cap: it batches the running sequences into one forward pass
QUEUE_PER_SLOT = 4  # the default queue holds this many requests per running slot


def running_cap(settings: Settings, engine: str) -> int | None:
    """--max-running-requests, or the engine's default: 16 on the CPU engine (each step is one forward pass
    over all of them, and a small model's step costs little more for 16 than for 1: bench/RESULTS.md); none on
    SGLang, whose scheduler batches up to its own limit and queues the rest."""
    if settings.max_running_requests is not None:
        return settings.max_running_requests
    if engine == "cpu":
        return CPU_RUNNING_CAP
    return None


def engine_config(settings: Settings, model_path: str) -> EngineConfig:
    """Every EngineConfig field from the setting of the same name, and the --engine-arg pass-through."""
    same_name = {f.name: getattr(settings, f.name) for f in fields(EngineConfig) if hasattr(settings, f.name)}
    extra = tuple(_engine_arg(arg) for arg in settings.engine_args)
    return EngineConfig(**same_name | {"model_path": model_path, "served_model_name": settings.model_name,
                                       "extra": extra})


def _engine_arg(arg: str) -> tuple[str, str]:
    name, sep, value = arg.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--engine-arg {arg!r} is not name=value")
    return name.strip().replace("-", "_"), value.strip()


class ServiceState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: GenerationService | None = None
        self.failure: str | None = None
        self.created = int(time.time())
        self.metrics = Metrics()
        self.thinking_signer = ThinkingSigner.from_setting(settings.thinking_signature_key)
        self.admission = Admission(None, 0, settings.max_queue_wait)  # sized in start(), once the engine is known
        self.metrics.waiting.set_function(lambda: self.admission.waiting)
        self.shutting_down = False
        self._cut_off = False  # the drain time is over: aborted runs end with an error
        self._drain: asyncio.Task[None] | None = None
        self._running: dict[str, GenerationService] = {}  # engine rid -> its service, for the cut-off
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def ready(self) -> bool:
        return self.service is not None

    def require(self) -> GenerationService:
        if self.service is not None and not self.shutting_down:
            return self.service
        if self.shutting_down:
            raise EngineUnavailable("The server is shutting down; retry on another instance.")
        if self.failure is not None:
            raise EngineUnavailable("The engine failed to start; the server log has the details.")
        raise EngineUnavailable("The model is still loading; retry shortly.")

    async def lease(self, generations: int = 1) -> Lease:
        """A place for `generations` runs, waiting in the admission queue if need be (429 when it is full or
        the wait runs out); each run takes its slot in running(), and the caller closes the lease (the run
        owner, app/streaming.py)."""
        self.require()
        return await self.admission.acquire(generations)

    @property
    def cut_off(self) -> bool:
        """The shutdown's drain time is over: a run that ends aborted now was aborted by the shutdown."""
        return self._cut_off

    @asynccontextmanager
    async def running(self, lease: Lease, prepared: PreparedRequest) -> AsyncIterator[GenerationService]:
        """One generation in flight, on one of the lease's slots, so shutdown can wait for it (or abort it)."""
        service = self.require()
        rid = prepared.engine_request.rid
        with lease.slot():
            self._running[rid] = service
            self._idle.clear()
            try:
                yield service
            finally:
                del self._running[rid]
                if not self._running:
                    self._idle.set()

    def begin_shutdown(self) -> None:
        """Refuse new work and start draining the running (steps 1-3 above). Idempotent."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.admission.close()
        log.info("shutdown: %d generations running; they get %.0f s to finish", len(self._running),
                 self.settings.shutdown_timeout)
        self._drain = asyncio.ensure_future(self._drain_running())

    async def _drain_running(self) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_timeout)
        except TimeoutError:
            log.warning("shutdown: %d generations still running after %.0f s; ending them with an error",
                        len(self._running), self.settings.shutdown_timeout)
            self._cut_off = True
            for rid, service in list(self._running.items()):
                await service.engine.abort(rid)

    async def start(self) -> None:
        s = self.settings
        try:
            path = await asyncio.to_thread(resolve_model_path, s.model, _cache_dir(s))
            info = await asyncio.to_thread(load_model_info, path, context_length=s.context_length)
            name = resolve_engine_name(s.engine)
            cap = running_cap(s, name)
            queue = s.max_queued_requests if s.max_queued_requests is not None else QUEUE_PER_SLOT * (cap or 0)
            self.admission = Admission(cap, queue, s.max_queue_wait)
            engine = create_engine(name, engine_config(s, path), info)
            await engine.start()
            tool_format = select_format(s.tool_format, info.tokenizer.chat_template, info.tokenizer.get_added_vocab())
            service = GenerationService(engine, info, tool_format,
                                        select_reasoning_format(s.reasoning_format, info.tokenizer.chat_template),
                                        grammar_budget=s.grammar_budget, tool_call_first=s.tool_call_first)
            await _warm_up(service)
        except Exception as exc:  # reported through /health and 503s by type only; details in the log
            log.exception("engine start failed")
            self.failure = type(exc).__name__
            return
        self.service = service
        reasoning = service.reasoning.format.name if service.reasoning else "none"
        log.info("ready: %s on the %s engine (context %d, tool format %s, reasoning format %s; %s running at once, "
                 "%d queued for up to %g s)", s.model_name, name, info.context_length, service.tool_format.name,
                 reasoning,
                 cap if cap is not None else "no limit on how many", self.admission.queue_cap, s.max_queue_wait)

    async def stop(self) -> None:
        """The lifespan's end: drain (if no signal began it), then close the engine."""
        self.begin_shutdown()
        if self._drain is not None:
            await self._drain
        service, self.service = self.service, None
        if service is not None:
            await service.engine.close()


async def _warm_up(service: GenerationService) -> None:
    """One short generation: readiness means the engine has produced tokens, not just loaded."""
    prepared = await service.prepare_completion("Hello", SamplingParams(temperature=0.0, max_new_tokens=2))
    async for _ in service.run(prepared):
        pass


def _cache_dir(settings: Settings) -> Any:
    from pathlib import Path

    return Path(settings.cache_dir) if settings.cache_dir else None
