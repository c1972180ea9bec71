"""Streaming clients for the two API dialects, over httpx with hand-parsed SSE.

Each client renders a `ChatSpec` into its dialect's request body, sends it, and records when every chunk
carrying output arrived, plus the usage the server reported (prompt, output and cached tokens).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import msgspec

from bench.spec import AssistantTurn, ChatSpec, RequestResult, ToolResult, UserText
from bench.sse import SseDecoder, SseEvent

Dialect = Literal["openai", "anthropic"]
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class Target:
    base_url: str
    model: str
    api_key: str | None = None
    stream: bool = True
    extra_body: dict[str, Any] = field(default_factory=dict)  # merged last: engine-specific fields


class DialectClient(Protocol):
    target: Target

    def path(self) -> str: ...

    def headers(self) -> dict[str, str]: ...

    def body(self, spec: ChatSpec) -> dict[str, Any]: ...

    def on_event(self, result: RequestResult, event: SseEvent, start: float) -> bool:
        """Record one SSE event; True once the stream's final event has arrived."""

    def on_response(self, result: RequestResult, data: dict[str, Any]) -> None:
        """Record a non-streaming response."""


def make_client(dialect: Dialect, target: Target) -> DialectClient:
    return OpenAIChat(target) if dialect == "openai" else AnthropicMessages(target)


async def send(http: httpx.AsyncClient, client: DialectClient, spec: ChatSpec) -> RequestResult:
    result = RequestResult(expected_prompt_tokens=spec.expected_prompt_tokens,
                           expected_output_tokens=spec.max_tokens if _exact_output(spec) else None)
    body = msgspec.json.encode({**client.body(spec), **client.target.extra_body})
    url = client.target.base_url.rstrip("/") + client.path()
    headers = {"content-type": "application/json", **client.headers()}
    start = time.perf_counter()
    try:
        async with http.stream("POST", url, content=body, headers=headers) as response:
            result.status = str(response.status_code)
            if response.status_code != 200:
                result.error = (await response.aread())[:2000].decode("utf-8", "replace")
                return result
            if client.target.stream:
                finished = await _read_stream(response, client, result, start)
                if not finished and result.error is None:
                    result.status, result.error = "incomplete_stream", "the stream ended before its final event"
            else:
                client.on_response(result, msgspec.json.decode(await response.aread()))
                result.ttft = time.perf_counter() - start  # as SGLang's client: the whole response is the first token
        result.e2e = time.perf_counter() - start
    except httpx.HTTPError as exc:
        result.status, result.error = type(exc).__name__, str(exc) or type(exc).__name__
    except (msgspec.DecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        result.status, result.error = "bad_response", f"{type(exc).__name__}: {exc}"
    result.ok = result.error is None
    return result


async def _read_stream(response: httpx.Response, client: DialectClient, result: RequestResult, start: float) -> bool:
    decoder = SseDecoder()
    finished = False
    async for chunk in response.aiter_bytes():
        for event in decoder.feed(chunk, time.perf_counter()):
            finished = client.on_event(result, event, start) or finished
    for event in decoder.close(time.perf_counter()):
        finished = client.on_event(result, event, start) or finished
    return finished


def _exact_output(spec: ChatSpec) -> bool:
    """ignore_eos makes the length exact only where no grammar may end the output first."""
    return spec.ignore_eos and (not spec.tools or spec.tool_choice == "none")


def _output_arrived(result: RequestResult, event: SseEvent, start: float) -> None:
    offset = event.arrived - start
    if result.ttft is None:
        result.ttft = offset
    result.chunk_times.append(offset)


# -- OpenAI chat completions ---------------------------------------------------------------------------


class OpenAIChat:
    def __init__(self, target: Target) -> None:
        self.target = target

    def path(self) -> str:
        return "/v1/chat/completions"

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.target.api_key}"} if self.target.api_key else {}

    def body(self, spec: ChatSpec) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": spec.system}] if spec.system else []
        for item in spec.messages:
            match item:
                case UserText():
                    messages.append({"role": "user", "content": item.text})
                case AssistantTurn():
                    message: dict[str, Any] = {"role": "assistant", "content": item.text or None}
                    if item.tool_uses:
                        message["tool_calls"] = [
                            {"id": u.id, "type": "function",
                             "function": {"name": u.name, "arguments": msgspec.json.encode(u.arguments).decode()}}
                            for u in item.tool_uses
                        ]
                    messages.append(message)
                case ToolResult():
                    messages.append({"role": "tool", "tool_call_id": item.tool_use_id, "content": item.content})
        body: dict[str, Any] = {"model": self.target.model, "messages": messages,
                                "max_completion_tokens": spec.max_tokens, "temperature": spec.temperature,
                                "stream": self.target.stream}
        if self.target.stream:
            body["stream_options"] = {"include_usage": True}
        if spec.ignore_eos:
            body["ignore_eos"] = True
        if spec.tools:
            body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                               "parameters": t.parameters}} for t in spec.tools]
        if spec.tool_choice is not None:
            body["tool_choice"] = spec.tool_choice
        return body

    def on_event(self, result: RequestResult, event: SseEvent, start: float) -> bool:
        if event.data.strip() == "[DONE]":
            return True
        chunk = msgspec.json.decode(event.data)
        if "error" in chunk:  # an error after the 200 went out, reported in-band
            result.status, result.error = "stream_error", str(chunk["error"])[:2000]
            return False
        if chunk.get("usage"):
            self._usage(result, chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = (delta.get("reasoning_content") or delta.get("reasoning") or "") + (delta.get("content") or "")
            calls = delta.get("tool_calls") or ()
            if text or calls:
                _output_arrived(result, event, start)
                result.text += text
                result.tool_calls += sum(1 for c in calls if c.get("id"))
        return False

    def on_response(self, result: RequestResult, data: dict[str, Any]) -> None:
        message = data["choices"][0]["message"]
        result.text = message.get("content") or ""
        result.tool_calls = len(message.get("tool_calls") or ())
        self._usage(result, data.get("usage") or {})

    @staticmethod
    def _usage(result: RequestResult, usage: dict[str, Any]) -> None:
        result.prompt_tokens = usage.get("prompt_tokens")
        result.output_tokens = usage.get("completion_tokens")
        details = usage.get("prompt_tokens_details") or {}
        result.cached_tokens = details.get("cached_tokens")


# -- Anthropic messages --------------------------------------------------------------------------------

_ANTHROPIC_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}


class AnthropicMessages:
    def __init__(self, target: Target) -> None:
        self.target = target

    def path(self) -> str:
        return "/v1/messages"

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self.target.api_key:
            headers["x-api-key"] = self.target.api_key
        return headers

    def body(self, spec: ChatSpec) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []

        def user_block(block: dict[str, Any]) -> None:
            # Tool results and user text that follow one another form one user message.
            if messages and messages[-1]["role"] == "user":
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})

        for item in spec.messages:
            match item:
                case UserText():
                    user_block({"type": "text", "text": item.text})
                case ToolResult():
                    user_block({"type": "tool_result", "tool_use_id": item.tool_use_id, "content": item.content})
                case AssistantTurn():
                    blocks: list[dict[str, Any]] = [{"type": "text", "text": item.text}] if item.text else []
                    blocks += [{"type": "tool_use", "id": u.id, "name": u.name, "input": u.arguments}
                               for u in item.tool_uses]
                    messages.append({"role": "assistant", "content": blocks})
        body: dict[str, Any] = {"model": self.target.model, "max_tokens": spec.max_tokens, "messages": messages,
                                "temperature": spec.temperature, "stream": self.target.stream}
        if spec.system:
            body["system"] = spec.system
        if spec.ignore_eos:
            body["ignore_eos"] = True  # an extension (SGLang's and ours); Anthropic's own API has no such field
        if spec.tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                             for t in spec.tools]
        if spec.tool_choice is not None:
            body["tool_choice"] = _ANTHROPIC_CHOICE[spec.tool_choice]
        return body

    def on_event(self, result: RequestResult, event: SseEvent, start: float) -> bool:
        data = msgspec.json.decode(event.data)
        kind = event.event or data.get("type")
        if kind == "message_start":
            self._usage(result, data["message"].get("usage") or {})
        elif kind == "content_block_start":
            if data["content_block"].get("type") == "tool_use":
                result.tool_calls += 1
                _output_arrived(result, event, start)
        elif kind == "content_block_delta":
            delta = data["delta"]
            text = delta.get("text") or delta.get("thinking") or ""
            if text or delta.get("partial_json"):
                _output_arrived(result, event, start)
                result.text += text
        elif kind == "message_delta":
            self._usage(result, data.get("usage") or {})
        elif kind == "message_stop":
            return True
        elif kind == "error":
            result.status, result.error = "stream_error", str(data.get("error"))[:2000]
        return False

    def on_response(self, result: RequestResult, data: dict[str, Any]) -> None:
        blocks = data.get("content") or []
        result.text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        result.tool_calls = sum(1 for b in blocks if b.get("type") == "tool_use")
        self._usage(result, data.get("usage") or {})

    @staticmethod
    def _usage(result: RequestResult, usage: dict[str, Any]) -> None:
        # input_tokens excludes the cached part: the prompt is all three counts together.
        if "input_tokens" in usage:
            cached = usage.get("cache_read_input_tokens") or 0
            created = usage.get("cache_creation_input_tokens") or 0
            result.prompt_tokens = (usage["input_tokens"] or 0) + cached + created
            result.cached_tokens = cached
        if "output_tokens" in usage:
            result.output_tokens = usage["output_tokens"]
