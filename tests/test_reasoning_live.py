"""Reasoning over both dialects, live, one tiny model per family (tests/reasoning_models.py) on the CPU engine:
OpenAI's `reasoning_content` and `reasoning`, Anthropic's signed thinking blocks; streamed = non-streamed, no
marker in the answer, the budget honoured to the token, the switches honoured, tools valid after thinking."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import jsonschema
import openai
import pytest

from app.anthropic.signature import ThinkingSigner
from tests.claude_code import sse
from tests.live_server import LiveServer, start_server
from tests.reasoning_models import build_family_model

KEY = "reasoning-test-key"
SIGNER = ThinkingSigner.from_setting(KEY)

MARKERS = ("<think>", "</think>", "<|channel|>", "<|message|>", "<|end|>", "<|start|>")
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module", params=["qwen3", "qwen3_5", "deepseek_r1", "deepseek_v3_1", "glm_4_6", "minimax_m2", "gpt_oss"])
def family_server(request, tiny_model_dir: Path, server_logs: Path) -> Iterator[tuple[str, LiveServer]]:
    family = request.param
    model = build_family_model(tiny_model_dir, tiny_model_dir.parent / f"reasoning-{family}", family)
    server = start_server("--model", str(model), "--served-model-name", "m", "--engine", "cpu",
                          "--context-length", "4096", "--thinking-signature-key", KEY, log_dir=server_logs)
    yield family, server
    server.stop()


@pytest.fixture()
def oai(family_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=family_server[1].base_url + "/v1", api_key="x", max_retries=0, timeout=120)


def thinking_on(family: str) -> dict:
    """Thinking switched on in each family's terms (gpt-oss through reasoning_effort)."""
    if family == "gpt_oss":
        return {"reasoning_effort": "low"}
    return {"chat_template_kwargs": {"enable_thinking": True, "thinking": True}}


def streamed(oai: openai.OpenAI, **kw) -> tuple[str, str, dict]:
    content, reasoning, usage = [], [], None
    for chunk in oai.chat.completions.create(model="m", messages=HI, stream=True,
                                             stream_options={"include_usage": True}, **kw):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            assert extra.get("reasoning_content") == extra.get("reasoning")
            reasoning.append(extra.get("reasoning_content") or "")
            content.append(choice.delta.content or "")
    return "".join(reasoning), "".join(content), usage


def test_reasoning_is_separated_streamed_and_not_and_the_budget_holds_to_the_token(family_server, oai):
    family, _ = family_server
    kw = dict(max_tokens=24, temperature=1.0, seed=7, extra_body={"thinking_token_budget": 6, **thinking_on(family)})
    if "reasoning_effort" in kw["extra_body"]:
        kw["reasoning_effort"] = kw["extra_body"].pop("reasoning_effort")
    r = oai.chat.completions.create(model="m", messages=HI, **kw)
    message = r.choices[0].message
    extra = message.model_extra or {}
    reasoning = extra["reasoning_content"]
    assert extra["reasoning"] == reasoning and reasoning
    assert message.content and not any(m in message.content for m in MARKERS), message.content
    assert r.usage.completion_tokens_details.reasoning_tokens == 6
    s_reasoning, s_content, usage = streamed(oai, **kw)
    assert (s_reasoning, s_content) == (reasoning, message.content)
    assert usage.completion_tokens_details.reasoning_tokens == 6


def test_thinking_switched_off_leaves_only_the_answer(family_server, oai):
    family, _ = family_server
    r = oai.chat.completions.create(model="m", messages=HI, max_tokens=12, seed=3, reasoning_effort="none")
    message = r.choices[0].message
    assert "reasoning_content" not in (message.model_extra or {})
    assert message.content and not any(m in message.content for m in MARKERS)
    assert r.usage.completion_tokens_details.reasoning_tokens == 0


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"],
    "additionalProperties": False}}}


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_tool_calls_are_valid_after_thinking(family_server, oai, tool_choice):
    family, _ = family_server
    extra = {"thinking_token_budget": 4, **thinking_on(family)}
    for stream in (False, True):
        # (max_tokens: harmony's headers may be spelled out in text tokens by a random model, which takes room)
        kw = dict(model="m", messages=HI, tools=[WEATHER], tool_choice=tool_choice, parallel_tool_calls=False,
                  max_tokens=200, seed=11,
                  extra_body=extra)
        if stream:
            calls: dict[int, list[str]] = {}
            reasoning = []
            for chunk in oai.chat.completions.create(stream=True, **kw):
                for choice in chunk.choices:
                    reasoning.append((choice.delta.model_extra or {}).get("reasoning_content") or "")
                    for call in choice.delta.tool_calls or ():
                        calls.setdefault(call.index, []).append(call.function.arguments or "")
            arguments = ["".join(parts) for parts in calls.values()]
            assert "".join(reasoning)
        else:
            r = oai.chat.completions.create(**kw)
            assert r.choices[0].finish_reason == "tool_calls"
            assert (r.choices[0].message.model_extra or {})["reasoning_content"]
            arguments = [c.function.arguments for c in r.choices[0].message.tool_calls]
        assert arguments
        for args in arguments:
            jsonschema.validate(json.loads(args), WEATHER["function"]["parameters"])


ANSWER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"],
          "additionalProperties": False}


def test_response_format_constrains_the_answer_not_the_thinking(family_server, oai):
    """A JSON schema without tools: the thinking stays free (gpt-oss: the analysis channel) and the answer (the
    final channel) is the JSON document, streamed and not; the budget still closes the thinking."""
    family, _ = family_server
    kw = dict(model="m", messages=HI, max_tokens=120, seed=5, response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER, "strict": True}})
    extra = {"thinking_token_budget": 5, **thinking_on(family)}
    if "reasoning_effort" in extra:
        kw["reasoning_effort"] = extra.pop("reasoning_effort")
    r = oai.chat.completions.create(extra_body=extra, **kw)
    message = r.choices[0].message
    reasoning = (message.model_extra or {}).get("reasoning_content")
    assert reasoning and r.usage.completion_tokens_details.reasoning_tokens == 5
    assert r.choices[0].finish_reason == "stop", message
    jsonschema.validate(json.loads(message.content), ANSWER)
    kw.pop("model"), kw.pop("messages")
    s_reasoning, s_content, _ = streamed(oai, extra_body=extra, **kw)
    assert (s_reasoning, s_content) == (reasoning, message.content)


def test_past_thinking_is_accepted_under_either_name(family_server, oai):
    for field in ("reasoning_content", "reasoning"):
        messages = [*HI, {"role": "assistant", "content": "Hello", field: "they greeted me"},
                    {"role": "user", "content": "And?"}]
        r = oai.chat.completions.create(model="m", messages=messages, max_tokens=4)
        assert r.choices[0].finish_reason in ("length", "stop")


# -- Anthropic -----------------------------------------------------------------------------------------------

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "x"}


@pytest.fixture()
def claude(family_server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=family_server[1].base_url, api_key="x", max_retries=0, timeout=120)


def test_anthropic_thinking_blocks_streamed_and_not(family_server, claude):
    """Thinking first, with a signature that is this server's MAC of its text; then the answer; the stream's
    exact event order (thinking_deltas, signature_delta, stop) and its blocks equal the non-streamed message."""
    family, server = family_server
    body = dict(model="m", max_tokens=24, messages=HI, thinking={"type": "enabled", "budget_tokens": 6})
    message = claude.messages.create(**body)
    kinds = [b.type for b in message.content]
    assert kinds[0] == "thinking" and "thinking" not in kinds[1:], kinds
    thinking = message.content[0]
    assert thinking.thinking and thinking.signature == SIGNER.sign(thinking.thinking)
    text = "".join(b.text for b in message.content if b.type == "text")
    assert not any(m in text for m in MARKERS), text
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        response = http.post("/v1/messages", headers=ANTHROPIC_HEADERS, json={**body, "stream": True})
    transcript = sse.check(sse.parse(response.text))
    assert transcript.blocks[0]["type"] == "thinking" and transcript.blocks[0]["signature"]
    assert transcript.blocks[0]["signature"] == SIGNER.sign(transcript.blocks[0]["thinking"])
    with claude.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert [b.model_dump() for b in final.content][0]["type"] == "thinking"


def test_anthropic_stream_equals_the_message_with_a_seed(family_server, claude):
    _, server = family_server
    body = dict(model="m", max_tokens=20, messages=HI, thinking={"type": "enabled", "budget_tokens": 5},
                extra_body={"temperature": 0.0})  # (this SDK's create() no longer takes temperature itself)
    message = claude.messages.create(**body)
    with claude.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in message.content]


def test_anthropic_thinking_disabled_gives_no_thinking_block(family_server, claude):
    message = claude.messages.create(model="m", max_tokens=10, messages=HI, thinking={"type": "disabled"})
    assert all(b.type != "thinking" for b in message.content)


def test_signed_thinking_is_rendered_back_and_forged_thinking_is_not(family_server, claude):
    """In a tool loop, the turn in progress keeps its thinking in the templates that render it (Qwen3, GLM,
    MiniMax, gpt-oss); a block with a signature that is not ours is dropped."""
    family, _ = family_server
    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}

    def tokens(signature: str) -> int:
        messages = [*HI, {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "The user wants the weather in Paris.", "signature": signature},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}]
        return claude.messages.count_tokens(model="m", messages=messages, tools=[tool]).input_tokens

    signed, forged = tokens(SIGNER.sign("The user wants the weather in Paris.")), tokens("forged")
    if family in ("qwen3", "qwen3_5", "glm_4_6", "minimax_m2", "gpt_oss"):
        assert signed > forged
    else:  # DeepSeek's templates drop past thinking
        assert signed == forged
    redacted = [*HI, {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "opaque"},
                                                         {"type": "text", "text": "Hello"}]},
                {"role": "user", "content": "And?"}]
    assert claude.messages.create(model="m", max_tokens=3, messages=redacted).stop_reason


# -- Responses -----------------------------------------------------------------------------------------------


def test_responses_reasoning_items_streamed_and_not(family_server, oai):
    """Thinking comes back as a reasoning item (its text in `content`), counted in
    output_tokens_details.reasoning_tokens; streamed as reasoning_text deltas; effort none gives none."""
    body = dict(model="m", input="Hi", max_output_tokens=12, reasoning={"effort": "low"})
    response = oai.responses.create(**body)
    item = response.output[0]
    assert item.type == "reasoning" and item.content and item.content[0].text
    assert response.usage.output_tokens_details.reasoning_tokens > 0
    deltas = [e.delta for e in oai.responses.create(stream=True, **body) if e.type == "response.reasoning_text.delta"]
    assert "".join(deltas)
    off = oai.responses.create(model="m", input="Hi", max_output_tokens=6, reasoning={"effort": "none"})
    assert all(o.type != "reasoning" for o in off.output)
