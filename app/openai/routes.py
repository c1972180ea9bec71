"""OpenAI routes: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial

from litestar import Request, Response, Router, get, post
from litestar.response import Stream

from app.decoding import decode, json_dumps
from app.dialect import speaks_anthropic
from app.models import ModelNames
from app.openai import convert, render
from app.openai import schemas as s
from app.openai.constraints import output_format
from app.openai.errors import openai_error_handler
from app.preparing import preparing
from app.state import ServiceState
from app.streaming import (
    SSE_HEADERS,
    ClientDisconnected,
    all_or_none,
    disconnected_response,
    merged,
    start_events,
    unless_disconnected,
)
from runtime.admission import Lease
from runtime.errors import NotFound
from runtime.service import PreparedRequest
from runtime.types import ChatEvent, SamplingParams


def json_response(payload: object) -> Response:
    return Response(json_dumps(payload), media_type="application/json")


async def _collect(service_state: ServiceState, prepared: PreparedRequest, lease: Lease) -> render.Collected:
    return await render.collect(await start_events(service_state, prepared, lease))


async def _admitted_streams(service_state: ServiceState,
                            prepared: list[PreparedRequest]) -> list[AsyncIterator[ChatEvent]]:
    async with service_state.admit(len(prepared)) as lease:
        return await all_or_none([start_events(service_state, p, lease) for p in prepared])


async def _admitted_collect(service_state: ServiceState, prepared: list[PreparedRequest]) -> list[render.Collected]:
    async with service_state.admit(len(prepared)) as lease:
        return await all_or_none([_collect(service_state, p, lease) for p in prepared])


async def respond(
    request: Request,
    service_state: ServiceState,
    prepared: list[PreparedRequest],
    stream: Callable[[AsyncIterator[tuple[int, ChatEvent]]], AsyncIterator[bytes]] | None,
    complete: Callable[[list[render.Collected]], object],
) -> Response:
    """Run the prepared choices: as one SSE stream encoded by `stream`, or collected and answered by
    `complete`. Either way a client that disconnects first cancels the runs."""
    try:
        if stream is not None:
            events = await unless_disconnected(request, _admitted_streams(service_state, prepared))
            return Stream(stream(merged(events)), media_type="text/event-stream", headers=SSE_HEADERS)
        collected = await unless_disconnected(request, _admitted_collect(service_state, prepared))
    except ClientDisconnected:
        return disconnected_response()
    return json_response(complete(collected))


def _include_usage(req: s.SamplingFields) -> bool:
    return bool(req.stream_options and req.stream_options.include_usage)


def _choices(sampling: SamplingParams, n: int) -> list[SamplingParams]:
    """n choices; with a seed, choice i uses seed + i, so they differ yet each is reproducible."""
    if sampling.seed is None:
        return [sampling] * n
    return [replace(sampling, seed=sampling.seed + i) for i in range(n)]


@post("/chat/completions", status_code=200)
async def chat_completions(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    body = await request.body()
    async with preparing(request):
        req = await asyncio.to_thread(decode, s.chat_request_decoder, body)
        model = names.check(req.model)
        chat = await asyncio.to_thread(convert.chat_request, req)
        service = service_state.require()
        prepared = [await service.prepare_chat(replace(chat, sampling=sampling))  # each its own parser and rid
                    for sampling in _choices(chat.sampling, req.n)]
    rid = "chatcmpl-" + secrets.token_hex(12)
    prompt_ids = list(prepared[0].engine_request.input_ids) if req.return_token_ids else None
    stream = None
    if req.stream:
        stream = partial(render.chat_chunks, rid, model, choices=req.n, include_usage=_include_usage(req),
                         prompt_ids=prompt_ids)
    return await respond(request, service_state, prepared, stream,
                          partial(render.chat_completion, rid, model, prompt_ids=prompt_ids))


@post("/completions", status_code=200)
async def completions(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    body = await request.body()
    async with preparing(request):
        req = await asyncio.to_thread(decode, s.completion_request_decoder, body)
        model = names.check(req.model)
        prompts = convert.completion_prompts(req)
        logprobs = convert.completion_logprobs(req)
        sampling = convert.sampling_params(req, 16 if req.max_tokens is None else req.max_tokens,  # OpenAI's
                                           logprobs)  # default
        service = service_state.require()
        scored = req.echo and logprobs is not None  # echo + logprobs: the prompt's tokens get logprobs too
        prompt_top = convert.prompt_logprobs(req)  # vLLM's prompt_logprobs
        output = await asyncio.to_thread(output_format, req)  # (parses grammars: off the event loop)
        prepared = [await service.prepare_completion(prompt, one, prompt_logprobs=scored,
                                                     prompt_top_logprobs=prompt_top, response_format=output)
                    for prompt in prompts for one in _choices(sampling, req.n)]  # prompt-major
        echo = None
        if req.echo:
            texts = [p if isinstance(p, str) else await service.detokenize(p) for p in prompts]
            echo = [text for text in texts for _ in range(req.n)]
    rid = "cmpl-" + secrets.token_hex(12)
    prompt_ids = [list(p.engine_request.input_ids) for p in prepared] if req.return_token_ids else None
    stream = None
    if req.stream:
        stream = partial(render.completion_chunks, rid, model, include_usage=_include_usage(req), echo=echo, n=req.n,
                         prompt_ids=prompt_ids)
    return await respond(request, service_state, prepared, stream,
                          partial(render.completion, rid, model, echo=echo, n=req.n, prompt_ids=prompt_ids,
                                  prompt_logprobs=prompt_top is not None))


def model_cards(service_state: ServiceState, names: ModelNames) -> list[s.ModelCard]:
    window = service_state.service.context_length if service_state.service else None
    return [s.ModelCard(names.served, service_state.created, "inference-service", root=names.served, max_model_len=window)]


@get("/models")
async def list_models(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    if speaks_anthropic(request):
        from app.anthropic.models import model_list

        return model_list(request, service_state, names)
    return json_response(s.ModelList(model_cards(service_state, names)))


@get("/models/{model_id:path}")
async def get_model(request: Request, model_id: str, service_state: ServiceState, names: ModelNames) -> Response:
    model_id = model_id.lstrip("/")
    if speaks_anthropic(request):
        from app.anthropic.models import model

        return model(request, model_id, service_state, names)
    if model_id not in names.accepted:
        raise NotFound(f"The model {model_id!r} does not exist.", param="model")
    card = model_cards(service_state, names)[0]
    card.id = model_id
    return json_response(card)


def openai_router() -> Router:
    return Router(
        path="/v1",
        route_handlers=[chat_completions, completions, list_models, get_model],
        exception_handlers={Exception: openai_error_handler},
    )
