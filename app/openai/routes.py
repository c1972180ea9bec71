"""OpenAI routes: /v1/chat/completions, /v1/completions (/v1/models is app/model_routes.py's)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace

from litestar import Request, Response, Router, post

from app import streaming
from app.decoding import decode, json_dumps
from app.models import ModelNames
from app.openai import convert, render
from app.openai import schemas as s
from app.openai.constraints import output_format
from app.openai.errors import openai_error_handler
from app.preparing import preparing
from app.request_id import engine_rids
from app.state import ServiceState
from runtime.types import ChatRequest, SamplingParams


def json_response(payload: object) -> Response:
    return Response(json_dumps(payload), media_type="application/json")


def _include_usage(req: s.SamplingFields) -> bool:
    return bool(req.stream_options and req.stream_options.include_usage)


def _choices(sampling: SamplingParams, n: int) -> list[SamplingParams]:
    """n choices; with a seed, choice i uses seed + i, so they differ yet each is reproducible."""
    if sampling.seed is None:
        return [sampling] * n
    return [replace(sampling, seed=sampling.seed + i) for i in range(n)]


def _chat_request(body: bytes, names: ModelNames) -> tuple[s.ChatCompletionRequest, str, ChatRequest]:
    """The body decoded, its model checked and converted: in one worker thread (a thread hand-off costs CPU)."""
    req = decode(s.chat_request_decoder, body)
    model = names.check(req.model)
    return req, model, convert.chat_request(req)


@post("/chat/completions", status_code=200)
async def chat_completions(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    body = await request.body()
    async with preparing(request):
        req, model, chat = await asyncio.to_thread(_chat_request, body, names)
        service = service_state.require()
        prepared = [await service.prepare_chat(replace(chat, sampling=sampling), rid,  # each its own parser
                                               adapter=names.adapter(model))
                    for sampling, rid in zip(_choices(chat.sampling, req.n), engine_rids(request, req.n))]
    rid = "chatcmpl-" + secrets.token_hex(12)
    prompt_ids = list(prepared[0].engine_request.input_ids) if req.return_token_ids else None
    if req.stream:
        encoder = render.ChatChunks(rid, model, _include_usage(req), prompt_ids)
        if convert.continuous_usage(req):
            encoder.continuous_prompt_tokens = prepared[0].prompt_tokens
        return await streaming.stream(request, service_state, prepared, encoder)
    return await streaming.respond(
        request, service_state, prepared,
        lambda results: json_response(render.chat_completion(rid, model, results, prompt_ids)))


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
        runs = [(prompt, one) for prompt in prompts for one in _choices(sampling, req.n)]  # prompt-major
        truncation = convert.prompt_truncation(req)
        prepared = [await service.prepare_completion(prompt, one, prompt_logprobs=scored,
                                                     prompt_top_logprobs=prompt_top, rid=rid,
                                                     adapter=names.adapter(model), response_format=output,
                                                     truncation=truncation)
                    for (prompt, one), rid in zip(runs, engine_rids(request, len(runs)))]
        echo = None
        if req.echo:  # the prompt as sent, or, truncated, what was left of it
            texts = [p if isinstance(p, str) and not run.prompt_cut
                     else await service.detokenize(list(run.engine_request.input_ids), text_prompt=isinstance(p, str))
                     for p, run in zip(prompts, prepared[:: req.n])]
            echo = [text for text in texts for _ in range(req.n)]
    rid = "cmpl-" + secrets.token_hex(12)
    prompt_ids = [list(p.engine_request.input_ids) for p in prepared] if req.return_token_ids else None
    if req.stream:
        encoder = render.CompletionChunks(rid, model, _include_usage(req), echo, req.n, prompt_ids)
        if convert.continuous_usage(req):
            encoder.continuous_prompt_tokens = sum(p.prompt_tokens for p in prepared[:: req.n])
        return await streaming.stream(request, service_state, prepared, encoder)
    return await streaming.respond(
        request, service_state, prepared,
        lambda results: json_response(render.completion(rid, model, results, echo, req.n, prompt_ids,
                                                        prompt_top is not None)))


def openai_router() -> Router:
    return Router(
        path="/v1",
        route_handlers=[chat_completions, completions],
        exception_handlers={Exception: openai_error_handler},
    )
