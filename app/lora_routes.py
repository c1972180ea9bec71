"""LoRA adapters loaded and unloaded while serving, on the routes vLLM and SGLang users already call:

- vLLM: `POST /v1/load_lora_adapter` `{"lora_name", "lora_path", "load_inplace"}` and `POST
  /v1/unload_lora_adapter` `{"lora_name"}`, answered with vLLM's plain-text success line, errors in OpenAI's shape;
- SGLang: `POST /load_lora_adapter` `{"lora_name", "lora_path", "pinned"}` and `POST /unload_lora_adapter`
  `{"lora_name"}`, answered with SGLang's `{"success", "error_message", "loaded_adapters"}` (400 on failure).

Off unless `--allow-runtime-lora` (or vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING=true): loading reads a path on the
server's disk that the caller names. A loaded adapter is a model id on this replica only (docs/API.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Annotated

import msgspec
from litestar import Request, Response, Router, post

from app.decoding import decode
from app.models import ModelNames
from app.openai.errors import openai_error_handler
from app.state import ServiceState
from runtime.adapters import LoraAdapter
from runtime.engines import AdapterLoading
from runtime.errors import InvalidRequest, NotFound, ServiceError

log = logging.getLogger(__name__)


class LoraUpdate(msgspec.Struct, forbid_unknown_fields=False):
    lora_name: Annotated[str, msgspec.Meta(max_length=256)]  # a model id: kept short, as ids are
    lora_path: str | None = None  # (unload: not needed)
    load_inplace: bool = False  # vLLM: replace an adapter already loaded under this name
    pinned: bool = False  # SGLang: never evicted by its max_loaded_loras; accepted here


_decoder = msgspec.json.Decoder(LoraUpdate)


async def load(request: Request, state: ServiceState, names: ModelNames) -> LoraAdapter:
    update, engine = await _update(request, state, names)
    if not update.lora_path:
        raise InvalidRequest("lora_path is required: the adapter's directory on the server.", param="lora_path")
    adapter = LoraAdapter(update.lora_name, update.lora_path)
    async with names.updating:  # one update at a time: the names and the engine's adapters agree throughout
        old = names.adapters.get(update.lora_name)
        if old is not None and not update.load_inplace:
            raise InvalidRequest(f"The LoRA adapter {update.lora_name!r} is already loaded.", param="lora_name")
        if old is not None:
            await _replace(engine, names, old, adapter)
        else:
            await engine.load_adapter(adapter)
            names.add_adapter(adapter)
    return adapter


async def _replace(engine: AdapterLoading, names: ModelNames, old: LoraAdapter, new: LoraAdapter) -> None:
    """vLLM's load_inplace: the name's weights swapped. Where the new ones cannot be loaded (the error is the
    caller's answer), the old ones are loaded back, so a bad path never takes an adapter away."""
    await _unload(engine, names, old)
    try:
        await engine.load_adapter(new)
    except ServiceError:
        try:
            await engine.load_adapter(old)
            names.add_adapter(old)
        except ServiceError:
            log.exception("LoRA adapter %s could not be loaded back from %s", old.name, old.path)
        raise
    names.add_adapter(new)


async def unload(request: Request, state: ServiceState, names: ModelNames) -> str:
    update, engine = await _update(request, state, names)
    async with names.updating:
        if update.lora_name not in names.adapters:
            raise NotFound(f"The LoRA adapter {update.lora_name!r} is not loaded.", param="lora_name")
        await _unload(engine, names, names.adapters[update.lora_name])
    return update.lora_name


async def _unload(engine: AdapterLoading, names: ModelNames, adapter: LoraAdapter) -> None:
    names.remove_adapter(adapter.name)  # new requests naming it: 404 from now on
    try:
        await engine.unload_adapter(adapter.name)
    except InvalidRequest:  # an engine that cannot unload it (the CPU engine's transformers path): still served
        names.add_adapter(adapter)
        raise


async def _update(request: Request, state: ServiceState, names: ModelNames) -> tuple[LoraUpdate, AdapterLoading]:
    if not state.settings.allow_runtime_lora:
        raise NotFound("Loading LoRA adapters while serving is off; start the server with --allow-runtime-lora "
                       "(or VLLM_ALLOW_RUNTIME_LORA_UPDATING=true), or name adapters with --lora-modules.")
    update = await asyncio.to_thread(decode, _decoder, await request.body())
    if not update.lora_name.strip():
        raise InvalidRequest("lora_name must not be empty.", param="lora_name")
    if names.is_base_name(update.lora_name):
        raise InvalidRequest(f"{update.lora_name!r} is the served model's name; name the adapter otherwise.",
                             param="lora_name")
    engine = state.require().engine
    if not isinstance(engine, AdapterLoading):
        raise InvalidRequest("This engine cannot load LoRA adapters while serving.")
    return update, engine


# -- vLLM ---------------------------------------------------------------------------------------------------------


@post("/v1/load_lora_adapter", status_code=200)
async def vllm_load(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    adapter = await load(request, service_state, names)
    return Response(f"Success: LoRA adapter '{adapter.name}' added successfully.", media_type="text/plain")


@post("/v1/unload_lora_adapter", status_code=200)
async def vllm_unload(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    name = await unload(request, service_state, names)
    return Response(f"Success: LoRA adapter '{name}' removed successfully.", media_type="text/plain")


# -- SGLang -------------------------------------------------------------------------------------------------------


@post("/load_lora_adapter", status_code=200)
async def sglang_load(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    return await _sglang_answer(load(request, service_state, names), names)


@post("/unload_lora_adapter", status_code=200)
async def sglang_unload(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    return await _sglang_answer(unload(request, service_state, names), names)


async def _sglang_answer(update: Awaitable[object], names: ModelNames) -> Response:
    """SGLang's LoRAUpdateOutput: success and the adapters now loaded, or 400 with the error's message."""
    try:
        await update
    except ServiceError as exc:
        if exc.status >= 500:
            raise
        return Response({"success": False, "error_message": exc.message, "loaded_adapters": None}, status_code=400)
    loaded = {name: adapter.path for name, adapter in names.adapters.items()}
    return Response({"success": True, "error_message": None, "loaded_adapters": loaded}, status_code=200)


def lora_router() -> Router:
    return Router(path="/", route_handlers=[vllm_load, vllm_unload, sglang_load, sglang_unload],
                  exception_handlers={Exception: openai_error_handler})
