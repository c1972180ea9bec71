"""POST /generate: SGLang's native generation route, on the same service as the OpenAI routes."""

from __future__ import annotations

import asyncio
from litestar import Request, Response, Router, post

from app import streaming
from app.decoding import decode
from app.models import ModelNames
from app.openai.errors import openai_error_handler
from app.openai.routes import json_response
from app.preparing import preparing
from app.request_id import engine_rids
from app.sglang_native import convert, render
from app.sglang_native import schemas as s
from app.state import ServiceState
from runtime.types import FieldNames


@post("/generate", status_code=200)
async def generate(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    body = await request.body()
    async with preparing(request):
        req = await asyncio.to_thread(decode, s.generate_request_decoder, body)
        adapter = names.adapter(names.check(req.model)) if req.model is not None else None
        prompts = convert.prompts(req)
        adapters = convert.adapters(req, len(prompts), lambda name, param: names.lora(name, param=param), adapter)
        samplings = convert.sampling(req.sampling_params)
        output = await asyncio.to_thread(convert.output_format, req.sampling_params)  # (parses grammars)
        service = service_state.require()
        runs = [(prompt, lora, one) for prompt, lora in zip(prompts, adapters) for one in samplings]  # prompt-major
        fields = FieldNames(prompt="text" if req.text is not None else "input_ids",
                            max_tokens="sampling_params.max_new_tokens")
        prepared = [await service.prepare_completion(prompt, one, rid=rid, adapter=lora, response_format=output,
                                                     fields=fields)
                    for (prompt, lora, one), rid in zip(runs, engine_rids(request, len(runs)))]
    rids = [p.engine_request.rid for p in prepared]
    batch = convert.is_batch(req)
    if req.stream:
        encoder = render.GenerateChunks(rids, [p.prompt_tokens for p in prepared], batch)
        return await streaming.stream(request, service_state, prepared, encoder)
    return await streaming.respond(request, service_state, prepared,
                                   lambda results: json_response(render.outputs(rids, batch, results)))


def sglang_native_router() -> Router:
    # Errors in OpenAI's shape: SGLang answers {"error": {"message"}}, of which it is a superset.
    return Router(path="/", route_handlers=[generate], exception_handlers={Exception: openai_error_handler})
