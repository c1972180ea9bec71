"""GET /openapi.json: the OpenAPI 3.1 document of both dialects' routes.

Built from the msgspec structs the handlers decode with (msgspec.json.schema_components), so the document
states exactly what is accepted, constraints included. Litestar's own generator would need the handlers to
declare typed bodies, which would move decoding (and its error messages) into Litestar; the handlers keep
reading raw bodies instead, and this table names each route's request and answer types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Response, Router, get

from app.anthropic import schemas as a
from app.openai import schemas as o
from app.responses import schemas as r
from app.sglang_native import schemas as g

_REF = "#/components/schemas/{name}"


@dataclass(frozen=True)
class _Operation:
    method: str
    path: str
    summary: str
    request: type | None
    answer: type
    error: type
    streams: bool = False  # `stream: true` answers text/event-stream
    path_params: tuple[str, ...] = ()


_OPERATIONS = (
    _Operation("post", "/v1/chat/completions", "OpenAI: create a chat completion", o.ChatCompletionRequest,
               o.ChatCompletion, o.ErrorResponse, streams=True),
    _Operation("post", "/v1/completions", "OpenAI: create a text completion", o.CompletionRequest, o.Completion,
               o.ErrorResponse, streams=True),
    _Operation("get", "/v1/models", "List the served model (Anthropic's shape with an anthropic-version header)",
               None, o.ModelList, o.ErrorResponse),
    _Operation("get", "/v1/models/{model_id}", "One model", None, o.ModelCard, o.ErrorResponse,
               path_params=("model_id",)),
    _Operation("post", "/v1/messages", "Anthropic: create a message", a.MessagesRequest, a.MessageOut, a.ErrorOut,
               streams=True),
    _Operation("post", "/v1/messages/count_tokens", "Anthropic: count a request's input tokens",
               a.CountTokensRequest, a.CountTokensOut, a.ErrorOut),
    _Operation("post", "/v1/responses", "OpenAI: create a response (Responses API)", r.ResponsesRequest,
               r.ResponseObject, o.ErrorResponse, streams=True),
    _Operation("get", "/v1/responses/{response_id}", "A stored response", None, r.ResponseObject, o.ErrorResponse,
               path_params=("response_id",)),
    _Operation("delete", "/v1/responses/{response_id}", "Delete a stored response", None, r.DeletedOut,
               o.ErrorResponse, path_params=("response_id",)),
    _Operation("get", "/v1/responses/{response_id}/input_items", "A stored response's input items", None,
               r.InputItemList, o.ErrorResponse, path_params=("response_id",)),
    _Operation("post", "/tokenize", "Token ids of a prompt or chat (vLLM's and SGLang's extension)",
               o.TokenizeRequest, o.TokenizeResponse, o.ErrorResponse),
    _Operation("post", "/detokenize", "Text of token ids", o.DetokenizeRequest, o.DetokenizeResponse,
               o.ErrorResponse),
    _Operation("post", "/generate", "SGLang's native generation (a list of outputs for a batch or n > 1)",
               g.GenerateRequest, g.GenerateOut, o.ErrorResponse, streams=True),
)


def openapi_document(title: str = "inference-service", version: str = "0.1.0") -> dict[str, Any]:
    types = sorted({t for op in _OPERATIONS for t in (op.request, op.answer, op.error) if t is not None},
                   key=lambda t: t.__qualname__)
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    ref = dict(zip(types, refs))
    paths: dict[str, dict[str, Any]] = {}
    for op in _OPERATIONS:
        answer: dict[str, Any] = {"application/json": {"schema": ref[op.answer]}}
        if op.streams:
            answer["text/event-stream"] = {"schema": {"type": "string"}}
        operation: dict[str, Any] = {
            "summary": op.summary,
            "responses": {
                "200": {"description": "OK", "content": answer},
                "default": {"description": "An error, in the dialect's shape",
                            "content": {"application/json": {"schema": ref[op.error]}}},
            },
        }
        if op.request is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {"application/json": {"schema": ref[op.request]}}}
        if op.path_params:
            operation["parameters"] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                                       for name in op.path_params]
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "OpenAI- and Anthropic-compatible routes; docs/API.md tells what each field does."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{"bearer": []}, {"x-api-key": []}],
    }


def openapi_router() -> Router:
    document = msgspec.json.encode(openapi_document())

    @get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> Response:
        return Response(document, media_type="application/json")

    return Router(path="/", route_handlers=[openapi_json])
