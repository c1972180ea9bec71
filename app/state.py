"""The engine's life inside the app: loaded in the background (so /health can say 503 meanwhile), warmed up
with one generation, drained and closed on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app.metrics import Metrics
from app.settings import Settings
from runtime.engines import EngineConfig, create_engine, resolve_engine_name
from runtime.errors import EngineUnavailable
from runtime.model import load_model_info, resolve_model_path
from runtime.service import GenerationService
from runtime.tools.registry import select_format
from runtime.types import SamplingParams

log = logging.getLogger(__name__)


class ServiceState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: GenerationService | None = None
        self.failure: str | None = None
        self.created = int(time.time())
        self.metrics = Metrics()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def ready(self) -> bool:
        return self.service is not None

    def require(self) -> GenerationService:
        if self.service is not None:
            return self.service
        if self.failure is not None:
            raise EngineUnavailable("The engine failed to start; the server log has the details.")
        raise EngineUnavailable("The model is still loading; retry shortly.")

    @asynccontextmanager
    async def request(self) -> AsyncIterator[GenerationService]:
        """Marks a request in flight, so shutdown can wait for it."""
        service = self.require()
        self._active += 1
        self._idle.clear()
        try:
            yield service
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def start(self) -> None:
        s = self.settings
        try:
            path = await asyncio.to_thread(resolve_model_path, s.model, _cache_dir(s))
            info = await asyncio.to_thread(load_model_info, path, context_length=s.context_length)
            name = resolve_engine_name(s.engine)
            config = EngineConfig(
                model_path=path, served_model_name=s.model_name, context_length=s.context_length, dtype=s.dtype,
                seed=s.seed, max_running_requests=s.max_running_requests, threads=s.threads,
                prefix_cache_entries=s.prefix_cache_entries, tp_size=s.tp_size,
                dp_size=s.dp_size, mem_fraction_static=s.mem_fraction_static,
                chunked_prefill_size=s.chunked_prefill_size, quantization=s.quantization,
                disable_radix_cache=s.disable_radix_cache,
            )
            engine = create_engine(name, config, info)
            await engine.start()
            service = GenerationService(engine, info, select_format(s.tool_format, info.tokenizer.chat_template))
            await _warm_up(service)
        except Exception as exc:  # reported through /health and 503s by type only; details in the log
            log.exception("engine start failed")
            self.failure = type(exc).__name__
            return
        self.service = service
        log.info("ready: %s on the %s engine (context %d, tool format %s)", s.model_name, name,
                 info.context_length, service.tool_format.name)

    async def stop(self) -> None:
        service, self.service = self.service, None  # new requests get 503 from here on
        if service is None:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_timeout)
        except TimeoutError:
            log.warning("shutdown: %d requests still running after %.0f s; aborting them",
                        self._active, self.settings.shutdown_timeout)
        await service.engine.close()


async def _warm_up(service: GenerationService) -> None:
    """One short generation: readiness means the engine has produced tokens, not just loaded."""
    prepared = await service.prepare_completion("Hello", SamplingParams(temperature=0.0, max_new_tokens=2))
    async for _ in service.run(prepared):
        pass


def _cache_dir(settings: Settings) -> Any:
    from pathlib import Path

    return Path(settings.cache_dir) if settings.cache_dir else None
