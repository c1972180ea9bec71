"""Responses requests to the neutral ChatRequest (app/responses/convert.py), without a server."""

from __future__ import annotations

import msgspec
import pytest

from app.decoding import decode
from app.responses import convert
from app.responses import schemas as s
from runtime.errors import InvalidRequest
from runtime.tools.freeform import freeform_parameters
from runtime.types import Message, ToolCall, ToolChoiceMode


def convert_body(body: dict, history: list[dict] | None = None) -> convert.Converted:
    req = decode(s.responses_decoder, msgspec.json.encode({"model": "m", **body}))
    return convert.chat_request(req, [msgspec.Raw(msgspec.json.encode(item)) for item in history or []])


def test_items_become_turns() -> None:
    chat = convert_body({"instructions": "Be brief.", "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Use tools."}]},
        {"role": "user", "content": "Weather?"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "I should call."}],
         "encrypted_content": "opaque"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "get", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"role": "developer", "content": "Answer now."},
    ]}).chat
    assert chat.messages == (
        Message("system", "Be brief.\n\nUse tools."),
        Message("user", "Weather?"),
        Message("assistant", "Checking.", (ToolCall("c1", "get", {"city": "Paris"}),), reasoning="I should call."),
        Message("tool", "sunny", tool_call_id="c1", name="get"),
        Message("user", "Answer now."),  # a later developer message joins a user turn
    )


def test_history_comes_first_and_unknown_items_are_dropped() -> None:
    history = [{"type": "message", "role": "user", "content": "Hi"},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
               {"type": "web_search_call", "id": "ws_1", "status": "completed"}]
    chat = convert_body({"input": "Again"}, history).chat
    assert [(m.role, m.content) for m in chat.messages] == [("user", "Hi"), ("assistant", "Hello"),
                                                             ("user", "Again")]


def test_tools_custom_namespace_and_hosted() -> None:
    converted = convert_body({"input": "x", "tools": [
        {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}},
        {"type": "custom", "name": "apply_patch",
         "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "a"+'}},
        {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g"}]},
        {"type": "web_search", "external_web_access": False},
    ], "tool_choice": {"type": "custom", "name": "apply_patch"}, "parallel_tool_calls": False})
    assert [t.name for t in converted.chat.tools] == ["f", "apply_patch", "ns.g"]
    assert converted.chat.tools[1].parameters == freeform_parameters()
    assert converted.chat.tools[1].freeform_grammar.startswith("root ::=")
    assert converted.names["ns.g"] == convert.ToolName("function", "g", "ns")
    assert converted.names["apply_patch"].kind == "custom"
    choice = converted.chat.tool_choice
    assert choice.mode is ToolChoiceMode.NAMED and choice.name == "apply_patch" and not choice.parallel
    assert len(converted.tools_out) == 3  # web_search is not echoed: it was not offered


@pytest.mark.parametrize("body,param", [
    ({"tools": [{"type": "file_search", "vector_store_ids": []}]}, "tools[0].type"),
    ({"tools": [{"type": "custom", "name": "c", "format": {"type": "grammar", "syntax": "lark",
                                                            "definition": "start: ("}}]}, "tools[0].format.definition"),
    ({"tools": [{"type": "custom", "name": "c", "format": {"type": "grammar", "syntax": "regex",
                                                            "definition": "[a-"}}]}, "tools[0].format.definition"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "filename": "a.pdf"}]}]}, "input[0].content[0]"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]}, "input[0].arguments"),
    ({"tool_choice": {"type": "function", "name": "missing"}, "tools": [{"type": "function", "name": "f"}]},
     "tool_choice.name"),
    ({"background": True}, "background"),
])
def test_refusals_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        convert_body({"input": "x", **body})
    assert err.value.param == param


def test_text_format_and_sampling() -> None:
    chat = convert_body({"input": "x", "text": {"format": {"type": "json_schema", "name": "w", "strict": True,
                                                           "schema": {"type": "object"}}},
                         "max_output_tokens": 7, "temperature": 0.5, "top_logprobs": 3,
                         "include": ["message.output_text.logprobs"]}).chat
    assert chat.response_format.type == "json_schema" and chat.response_format.strict
    assert chat.sampling.max_new_tokens == 7 and chat.sampling.temperature == 0.5 and chat.sampling.logprobs == 3
    assert convert_body({"input": "x", "top_logprobs": 3}).chat.sampling.logprobs is None
