"""The floor for the frontend-overhead comparison: a bare ASGI app on the same uvicorn, no framework.

It answers /v1/chat/completions and /v1/messages with SSE bytes encoded once at start-up, shaped like our
server's own output (the OpenAI chunks are encoded with app.openai.schemas), streaming `max_tokens` chunks
of the same text the replay engine emits. It reads each request body and decodes only the few fields that
pick the response, which is the least any server must do.

`python -m bench.raw_asgi --port 8001 [--model-name NAME]`
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import uvicorn

from app.openai import schemas as s
from bench.replay_engine import MAX_TOKENS, TOKEN_TEXT

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
JSON_HEADERS = [(b"content-type", b"application/json")]


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _Request(msgspec.Struct):
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream_options: _StreamOptions | None = None


_decoder = msgspec.json.Decoder(_Request)


def _sse(payload: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + msgspec.json.encode(payload) + b"\n\n"


class OpenAIBytes:
    """Our server's chat stream, byte for byte in shape (the id and timestamp are fixed)."""

    def __init__(self, model: str, include_usage: bool) -> None:
        rid, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
        self.rid, self.created, self.model = rid, created, model

        def chunk(delta: s.ChatDelta, reason: str | None = None) -> bytes:
            c = s.ChatCompletionChunk(rid, created, model, [s.ChatChunkChoice(0, delta, reason)])
            if include_usage:
                c.usage = None
            return _sse(c)

        self.first = chunk(s.ChatDelta(role="assistant", content=""))
        self.token = chunk(s.ChatDelta(content=TOKEN_TEXT))
        self.finish = chunk(s.ChatDelta(), "length")
        self.include_usage = include_usage

    def tail(self, tokens: int) -> list[bytes]:
        out = [self.finish]
        if self.include_usage:
            out.append(_sse(s.ChatCompletionChunk(self.rid, self.created, self.model, [], usage=self._usage(tokens))))
        return [*out, b"data: [DONE]\n\n"]

    def whole(self, tokens: int) -> bytes:
        message = s.ChatMessageOut(content=TOKEN_TEXT * tokens)
        return msgspec.json.encode(s.ChatCompletion(self.rid, self.created, self.model,
                                                    [s.ChatChoice(0, message, "length")], self._usage(tokens)))

    @staticmethod
    def _usage(tokens: int) -> s.UsageOut:
        return s.UsageOut(1, tokens, 1 + tokens, s.PromptTokensDetails(0))


class AnthropicBytes:
    """A Messages stream as Anthropic documents it: one text block."""

    def __init__(self, model: str) -> None:
        self.mid, self.model = "msg_" + secrets.token_hex(12), model
        usage = {"input_tokens": 1, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        message = {"id": self.mid, "type": "message", "role": "assistant", "content": [], "model": model,
                   "stop_reason": None, "stop_sequence": None, "usage": usage}
        self.first = (_sse({"type": "message_start", "message": message}, "message_start")
                      + _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                             "content_block_start"))
        self.token = _sse({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "text_delta", "text": TOKEN_TEXT}}, "content_block_delta")

    def tail(self, tokens: int) -> list[bytes]:
        return [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                _sse({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                      "usage": {"output_tokens": tokens}}, "message_delta"),
                _sse({"type": "message_stop"}, "message_stop")]

    def whole(self, tokens: int) -> bytes:
        return msgspec.json.encode({
            "id": self.mid, "type": "message", "role": "assistant", "model": self.model,
            "content": [{"type": "text", "text": TOKEN_TEXT * tokens}], "stop_reason": "max_tokens",
            "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": tokens}})


def create_raw_app(model: str = "bench-replay") -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    shapes = {
        ("/v1/chat/completions", False): OpenAIBytes(model, include_usage=False),
        ("/v1/chat/completions", True): OpenAIBytes(model, include_usage=True),
        ("/v1/messages", False): AnthropicBytes(model),
        ("/v1/messages", True): AnthropicBytes(model),
    }
    models = msgspec.json.encode({"object": "list", "data": [{"id": model, "object": "model", "created": 0,
                                                             "owned_by": "bench"}]})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()  # startup: nothing to load
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and path in ("/health", "/v1/models"):
            await _respond(send, 200, JSON_HEADERS, models if path == "/v1/models" else b'{"status":"ok"}')
            return
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/messages"):
            await _respond(send, 404, JSON_HEADERS, b'{"error":{"message":"not found"}}')
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        req = _decoder.decode(body)
        tokens = min(req.max_completion_tokens or req.max_tokens or 16, MAX_TOKENS)
        shape = shapes[(path, bool(req.stream_options and req.stream_options.include_usage))]
        if not req.stream:
            await _respond(send, 200, JSON_HEADERS, shape.whole(tokens))
            return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "body": shape.first, "more_body": True})
        for _ in range(tokens):
            await send({"type": "http.response.body", "body": shape.token, "more_body": True})
            await asyncio.sleep(0)  # one loop turn per token, as the replay engine does
        for part in shape.tail(tokens):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_asgi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model-name", default="bench-replay")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # The same uvicorn settings as `python -m app` (one worker, default loop and HTTP implementation).
    uvicorn.run(create_raw_app(args.model_name), host=args.host, port=args.port, log_level=args.log_level, workers=1)


if __name__ == "__main__":
    main()
