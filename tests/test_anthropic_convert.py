"""Anthropic requests to the neutral ChatRequest: pure conversion, no server."""

from __future__ import annotations

import json

import pytest

from app.anthropic import convert
from app.anthropic import schemas as s
from app.anthropic.errors import error_body, error_status
from app.anthropic.signature import ThinkingSigner
from app.decoding import decode
from runtime.errors import (
    ContextLengthExceeded,
    EngineFailure,
    EngineUnavailable,
    InvalidRequest,
    NotFound,
    Overloaded,
    RequestTooLarge,
    Unauthorized,
)
from runtime.types import Message, ToolCall, ToolChoiceMode
from tests.claude_code import request as claude_code


class _TrustAll(ThinkingSigner):
    """Conversion shapes, not signatures, are tested here: every thinking block counts as ours."""

    def verify(self, thinking: str, signature: str) -> bool:
        return True


def _chat(signer: ThinkingSigner | None = None, **body):
    payload = {"model": "claude-x", "max_tokens": 100, **body}
    return convert.chat_request(decode(s.messages_decoder, json.dumps(payload).encode()), signer or _TrustAll(b"k"))


def test_system_blocks_and_billing_header() -> None:
    chat = _chat(system=[{"type": "text", "text": claude_code.billing_header("abc")},
                         {"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                         {"type": "text", "text": "Two."}],
                 messages=[{"role": "user", "content": "hi"}])
    assert chat.messages == (Message("system", "One.\n\nTwo."), Message("user", "hi"))
    assert chat.clamp_max_tokens and chat.sampling.max_new_tokens == 100


def test_billing_header_line_inside_a_block() -> None:
    text = "x-anthropic-billing-header: cc_version=1; cch=99;\nYou are helpful."
    assert convert.without_billing_header(text) == "You are helpful."
    assert convert.without_billing_header("Mentions x-anthropic-billing-header: inline.") == \
        "Mentions x-anthropic-billing-header: inline."


def test_system_messages_before_and_after_the_conversation() -> None:
    chat = _chat(system="Base.", messages=[
        {"role": "system", "content": "Early."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "system", "content": "Late."},
    ])
    assert chat.messages == (Message("system", "Base.\n\nEarly."), Message("user", "a\n\nb\n\nLate."))


def test_tool_round_trip_and_trailing_system() -> None:
    chat = _chat(messages=claude_code.request()["messages"], tools=claude_code.tools())
    roles = [m.role for m in chat.messages]
    assert roles == ["user", "assistant", "tool", "user"]
    assistant, tool, last = chat.messages[1], chat.messages[2], chat.messages[3]
    assert assistant.content == "Let me look." and assistant.reasoning == "The user wants a listing."
    assert assistant.tool_calls == (ToolCall("toolu_01A", "Bash", {"command": "ls", "description": "List files"}),)
    assert tool == Message("tool", "README.md\nsrc\n", tool_call_id="toolu_01A", name="Bash")
    assert last.content.startswith("<system-reminder>Keep it short.")
    assert last.content.endswith("- Explore: read-only search.")
    assert len(chat.tools) == 24 and chat.tool_choice.mode is ToolChoiceMode.AUTO


def test_tool_result_error_and_blocks() -> None:
    chat = _chat(messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
             "content": [{"type": "text", "text": "boom"}, {"type": "search_result", "source": "x"}]}]},
    ], tools=[{"name": "f", "input_schema": {"type": "object"}}])
    assert chat.messages[-1] == Message("tool", "Error: boom", tool_call_id="toolu_1", name="f")


def test_consecutive_turns_merge() -> None:
    chat = _chat(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                           {"role": "assistant", "content": "c"}, {"role": "assistant", "content": "d"},
                           {"role": "user", "content": "e"}])
    assert chat.messages == (Message("user", "a\n\nb"), Message("assistant", "c\n\nd"), Message("user", "e"))


def test_unknown_blocks_dropped_and_unknown_fields_ignored() -> None:
    chat = _chat(messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "future": 1},
                                                        {"type": "container_upload", "file_id": "f"}]}],
                 service_tier="auto", container=None, mcp_servers=[])
    assert chat.messages == (Message("user", "hi"),)


def test_text_documents_accepted() -> None:
    chat = _chat(messages=[{"role": "user", "content": [
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "x=1"}},
        {"type": "text", "text": "Explain."}]}])
    assert chat.messages[0].content == "Notes\n\nx=1\n\nExplain."


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "http://x"}}]}],
     "messages[0].content[0]"),
    ([{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "data": "JVBERi0="}}]}],
     "messages[0].content[0].source"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "prefill"}], "messages"),
    ([{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}],
     "messages[0].content[0]"),
    ([{"role": "user", "content": [{"type": "text", "text": 3}]}], "messages[0].content[0].text"),
    ([{"role": "user", "content": [{"text": "no type"}]}], "messages[0].content[0].type"),
    ([], "messages"),
])
def test_invalid_messages_name_the_field(messages: list, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        _chat(messages=messages)
    assert info.value.param == param


def test_tool_choice_mapping() -> None:
    tools = [{"name": "a", "input_schema": {"type": "object"}}, {"name": "b", "input_schema": {"type": "object"}}]
    user = [{"role": "user", "content": "x"}]
    cases = {
        "auto": (ToolChoiceMode.AUTO, None, True),
        "any": (ToolChoiceMode.REQUIRED, None, True),
        "tool": (ToolChoiceMode.NAMED, "b", False),
        "none": (ToolChoiceMode.NONE, None, True),
    }
    for kind, (mode, name, parallel) in cases.items():
        choice: dict = {"type": kind}
        if kind == "tool":
            choice |= {"name": "b", "disable_parallel_tool_use": True}
        chat = _chat(messages=user, tools=tools, tool_choice=choice)
        assert (chat.tool_choice.mode, chat.tool_choice.name, chat.tool_choice.parallel) == (mode, name, parallel)
    assert _chat(messages=user).tool_choice.mode is ToolChoiceMode.NONE
    with pytest.raises(InvalidRequest):
        _chat(messages=user, tools=tools, tool_choice={"type": "tool", "name": "c"})
    with pytest.raises(InvalidRequest):
        _chat(messages=user, tools=[*tools, tools[0]])


def test_server_tools_are_ignored() -> None:
    chat = _chat(messages=[{"role": "user", "content": "x"}],
                 tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                        {"type": "custom", "name": "f", "input_schema": {"type": "object"}}])
    assert [t.name for t in chat.tools] == ["f"]


def test_sampling_and_output_format() -> None:
    chat = _chat(messages=[{"role": "user", "content": "x"}], temperature=0.2, top_p=0.5, top_k=7,
                 stop_sequences=["END"], output_config={"effort": "low", "format": {
                     "type": "json_schema", "schema": {"type": "object"}}})
    sampling = chat.sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.stop) == (0.2, 0.5, 7, ("END",))
    assert chat.response_format.type == "json_schema" and chat.response_format.schema == {"type": "object"}
    with pytest.raises(InvalidRequest):
        _chat(messages=[{"role": "user", "content": "x"}], stop_sequences=[""])


def test_error_shapes() -> None:
    cases = [
        (InvalidRequest("bad", param="x"), 400, "invalid_request_error"),
        (Unauthorized("no"), 401, "authentication_error"),
        (NotFound("model: m", param="model"), 404, "not_found_error"),
        (RequestTooLarge("big"), 413, "request_too_large"),
        (Overloaded("busy"), 429, "rate_limit_error"),
        (EngineFailure("oops"), 500, "api_error"),
        (EngineUnavailable("loading"), 529, "overloaded_error"),
    ]
    for err, status, kind in cases:
        assert error_status(err) == status
        assert error_body(err, "req_1").error.type == kind
    too_long = ContextLengthExceeded("long", prompt_tokens=5000, max_context=4096, param="messages")
    assert error_body(too_long).error.message .startswith("prompt is too long: 5000 tokens > 4096 maximum (")
    assert error_body(InvalidRequest("bad", param="x")).error.message == "x: bad"


def test_tool_reference_in_a_tool_result_is_rendered() -> None:
    """Claude Code's ToolSearch answers with tool_reference blocks; dropped, the model saw an empty result."""
    chat = _chat(messages=[
        {"role": "user", "content": "Find a tool"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ToolSearch",
                                           "input": {"query": "bash"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "tool_reference", "tool_name": "Bash"},
                                                  {"type": "tool_reference", "tool_name": "Grep"}]}]},
    ])
    assert chat.messages[-1] == Message("tool", "Tool loaded: Bash\n\nTool loaded: Grep", tool_call_id="toolu_1",
                                        name="ToolSearch")


def test_thinking_blocks_are_trusted_only_with_this_servers_signature() -> None:
    signer = ThinkingSigner(b"server key")
    for signature, kept in ((signer.sign("Plan it."), "Plan it."), (ThinkingSigner(b"other").sign("Plan it."), None),
                            ("forged", None), (signer.sign("Plan it!"), None)):
        chat = _chat(signer, messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Plan it.", "signature": signature}, {"type": "text", "text": "ok"}]},
            {"role": "user", "content": "go"}])
        assert chat.messages[1].reasoning == kept


def test_thinking_request_maps_to_reasoning_options() -> None:
    user = [{"role": "user", "content": "hi"}]
    assert _chat(messages=user, thinking={"type": "enabled", "budget_tokens": 64}).reasoning.budget_tokens == 64
    assert _chat(messages=user, thinking={"type": "enabled", "budget_tokens": 64}).reasoning.enabled is True
    assert _chat(messages=user, thinking={"type": "disabled"}).reasoning.enabled is False
    assert _chat(messages=user, thinking={"type": "adaptive"}).reasoning.enabled is None
    assert _chat(messages=user).reasoning.enabled is None
