"""POST /tokenize and /detokenize, as vLLM's and SGLang's servers offer them: exact token counts and ids for
clients that budget prompts (the Anthropic side has /v1/messages/count_tokens)."""

from __future__ import annotations

import asyncio

from litestar import Request, Response, Router, post

from app.decoding import decode
from app.models import ModelNames
from app.openai import convert
from app.openai import schemas as s
from app.openai.errors import openai_error_handler
from app.openai.routes import json_response
from app.preparing import preparing
from app.state import ServiceState
from runtime.errors import InvalidRequest


@post("/tokenize", status_code=200)
async def tokenize(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    body = await request.body()
    async with preparing(request):
        req = await asyncio.to_thread(decode, s.tokenize_request_decoder, body)
        model = names.check(req.model) if req.model is not None else names.served
        service = service_state.require()
        if (req.prompt is None) == (req.messages is None):
            raise InvalidRequest("Send either prompt (text) or messages (a chat), not both." if req.prompt is not None
                                 else "Send prompt (text) or messages (a chat).", param="prompt")
        if req.messages is not None:
            chat = await asyncio.to_thread(convert.chat_request, s.ChatCompletionRequest(
                model=model, messages=req.messages, tools=req.tools, add_generation_prompt=req.add_generation_prompt,
                continue_final_message=req.continue_final_message, chat_template_kwargs=req.chat_template_kwargs))
            ids = await service.tokenize_chat(chat)
        else:
            assert req.prompt is not None
            ids = await service.tokenize_text(req.prompt, add_special_tokens=req.add_special_tokens)
        strs = service.model.tokenizer.convert_ids_to_tokens(ids) if req.return_token_strs else None
    return json_response(s.TokenizeResponse(len(ids), service.context_length, ids, strs))


@post("/detokenize", status_code=200)
async def detokenize(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    body = await request.body()
    async with preparing(request):
        req = await asyncio.to_thread(decode, s.detokenize_request_decoder, body)
        if req.model is not None:
            names.check(req.model)
        text = await service_state.require().detokenize(req.tokens)
    return json_response(s.DetokenizeResponse(text))


def tokens_router() -> Router:
    return Router(path="/", route_handlers=[tokenize, detokenize], exception_handlers={Exception: openai_error_handler})
