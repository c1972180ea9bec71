"""Engines behind one short protocol, chosen by name and imported lazily.

A CPU-only machine never imports sglang: each factory imports its engine module only when picked.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import AsyncIterator, Protocol, runtime_checkable

from runtime.adapters import LoraAdapter
from runtime.model import ModelInfo
from runtime.types import EngineEvent, EngineRequest


@dataclass(frozen=True)
class EngineConfig:
    """Settings an engine may use; each engine reads the ones that apply to it. The app fills every field
    from the setting of the same name (app/state.py `engine_config`): a new engine option is a field here
    and a setting there. Options only one engine knows can also go through `extra` untyped
    (`--engine-arg name=value`, e.g. SGLang's server arguments)."""

    model_path: str
    served_model_name: str
    context_length: int | None = None
    dtype: str = "auto"
    seed: int = 0
    max_running_requests: int | None = None
    grammar_timeout: float = 60.0  # seconds a grammar may take to compile (SGLang: SGLANG_GRAMMAR_TIMEOUT)
    # LoRA adapters a request may name (EngineRequest.adapter): PEFT directories, loaded at start
    lora_adapters: tuple[LoraAdapter, ...] = ()
    enable_lora: bool = False
    allow_runtime_lora: bool = False  # adapters may be loaded and unloaded while serving (AdapterLoading)
    max_lora_rank: int | None = None  # adapters above it are refused at start (runtime/adapters.check_ranks)
    max_loras: int | None = None  # SGLang's max_loras_per_batch
    max_cpu_loras: int | None = None  # SGLang's max_loaded_loras
    # CPU engine
    threads: int | None = None
    prefix_cache_entries: int = 4  # the transformers path's prefix cache
    kv_cache_mb: int = 1024  # the batched path's KV pool
    kv_block_size: int = 16
    cpu_backend: str = "auto"  # auto | native | transformers
    # SGLang engine, passed through
    tp_size: int = 1
    dp_size: int = 1
    mem_fraction_static: float | None = None
    chunked_prefill_size: int | None = None
    quantization: str | None = None
    disable_radix_cache: bool = False
    extra: tuple[tuple[str, str], ...] = ()  # (name, value) pairs for the engine, as given


@runtime_checkable
class Engine(Protocol):
    async def start(self) -> None:
        """Load the model; returns when the engine can serve."""

    async def close(self) -> None:
        """Release the engine's resources; in-flight requests end with an abort."""

    def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        """Run one request: text deltas, each with the count of tokens it completes, then exactly one Finished.
        Stop strings are not the engine's (the output pipeline matches them); closing the iterator aborts it."""

    async def abort(self, rid: str) -> None:
        """Stop a running request; its stream ends with Finished(ABORT)."""


@runtime_checkable
class AdapterLoading(Protocol):
    """What an engine that loads LoRA adapters while serving also has (both of ours do)."""

    async def load_adapter(self, adapter: LoraAdapter) -> None:
        """Serve `adapter` under its name from now on; InvalidRequest if loaded already or unusable."""

    async def unload_adapter(self, name: str) -> None:
        """Stop serving it: new requests naming it fail at once; returns once running ones have finished and
        it is freed. NotFound if it is not loaded."""


_ENGINES = {
    "cpu": "runtime.engines.cpu.engine:CpuEngine",
    "sglang": "runtime.engines.sglang:SglangEngine",
}


def engine_names() -> tuple[str, ...]:
    return ("auto", *_ENGINES)


def resolve_engine_name(name: str) -> str:
    """'auto' picks SGLang where CUDA and sglang are both present, else the CPU engine. A 'module:Class'
    spec names an engine outside the registry (the benchmarks' replay engine)."""
    if ":" in name:
        return name
    if name != "auto":
        if name not in _ENGINES:
            raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(engine_names())}")
        return name
    if importlib.util.find_spec("sglang") is not None:
        import torch

        if torch.cuda.is_available():
            return "sglang"
    return "cpu"


def create_engine(name: str, config: EngineConfig, model: ModelInfo) -> Engine:
    resolved = resolve_engine_name(name)
    module_name, _, class_name = _ENGINES.get(resolved, resolved).partition(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(config, model)
