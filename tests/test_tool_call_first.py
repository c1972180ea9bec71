"""--tool-call-first (runtime/tool_policy.py): under tool_choice auto, a user's turn begins with a tool call
until a tool result is in the conversation, then the model is free to answer. Served on the terse model, which
ends its turns in text and never starts a call by itself, so each call here is the option's doing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anthropic
import jsonschema
import openai
import pytest

from runtime.tool_policy import apply_tool_call_first, awaits_first_call
from runtime.types import ChatRequest, Message, Tool, ToolCall, ToolChoice, ToolChoiceMode
from tests.live_server import LiveServer, start_server

SHELL = {"type": "object", "properties": {"cmd": {"type": "string", "maxLength": 8}}, "required": ["cmd"],
         "additionalProperties": False}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "shell", "description": "Runs a command.",
                                                  "parameters": SHELL}}]


@pytest.fixture(scope="module")
def first_call_server(terse_model_dir: Path, server_logs: Path) -> Iterator[LiveServer]:
    s = start_server("--model", str(terse_model_dir), "--served-model-name", "terse", "--context-length", "4096",
                     "--tool-call-first", log_dir=server_logs)
    yield s
    s.stop()


def test_policy_forces_only_a_turn_without_tool_results() -> None:
    tool = Tool("shell", "Runs a command.", SHELL)
    call = ToolCall("c1", "shell", {"cmd": "ls"})
    fresh = ChatRequest((Message("user", "hi"),), tools=(tool,))
    answered = ChatRequest((Message("user", "hi"), Message("assistant", tool_calls=(call,)),
                            Message("tool", "a b", tool_call_id="c1")), tools=(tool,))
    next_turn = ChatRequest((*answered.messages, Message("assistant", "done"), Message("user", "again")),
                            tools=(tool,))
    assert awaits_first_call(fresh) and awaits_first_call(next_turn) and not awaits_first_call(answered)
    # Anthropic's user message of tool results and text (a reminder): tool messages, then a user message
    with_text = ChatRequest((*answered.messages, Message("user", "<system-reminder>x</system-reminder>")),
                            tools=(tool,))
    assert not awaits_first_call(with_text)
    assert apply_tool_call_first(fresh).tool_choice.mode is ToolChoiceMode.REQUIRED
    assert apply_tool_call_first(next_turn).tool_choice.mode is ToolChoiceMode.REQUIRED
    assert apply_tool_call_first(answered) is answered
    for choice in (ToolChoice(ToolChoiceMode.NONE), ToolChoice(ToolChoiceMode.NAMED, "shell")):
        kept = ChatRequest(fresh.messages, tools=(tool,), tool_choice=choice)
        assert apply_tool_call_first(kept) is kept
    no_tools = ChatRequest(fresh.messages)
    assert apply_tool_call_first(no_tools) is no_tools
    other = Tool("write", "Writes.", SHELL)
    two = ChatRequest(fresh.messages, tools=(other, tool))
    assert apply_tool_call_first(two, "shell").tool_choice == ToolChoice(ToolChoiceMode.NAMED, "shell")
    assert apply_tool_call_first(two, "absent").tool_choice.mode is ToolChoiceMode.REQUIRED  # not offered
    assert apply_tool_call_first(replace(two, messages=answered.messages), "shell").tool_choice.mode \
        is ToolChoiceMode.AUTO


def test_openai_chat_turn_calls_then_answers(first_call_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=first_call_server.base_url + "/v1", api_key="x", max_retries=0, timeout=120)
    messages: list[dict] = [{"role": "user", "content": "List the files."}]
    for stream in (False, True):
        if stream:
            chunks = list(client.chat.completions.create(model="terse", messages=messages, tools=OPENAI_TOOLS,
                                                         max_tokens=200, stream=True))
            calls = [c.function for ch in chunks for c in (ch.choices[0].delta.tool_calls or []) if ch.choices]
            args = "".join(f.arguments or "" for f in calls)
            assert calls and calls[0].name == "shell"
        else:
            first = client.chat.completions.create(model="terse", messages=messages, tools=OPENAI_TOOLS,
                                                   max_tokens=200)
            assert first.choices[0].message.tool_calls, first.model_dump_json()
            call = first.choices[0].message.tool_calls[0]
            assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "shell"
            args = call.function.arguments
        jsonschema.validate(json.loads(args), SHELL)
    answered = [*messages, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "ls"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "a.txt b.txt"}]
    second = client.chat.completions.create(model="terse", messages=answered, tools=OPENAI_TOOLS, max_tokens=200)
    assert second.choices[0].message.tool_calls is None and second.choices[0].finish_reason == "stop"


def test_anthropic_turn_calls_then_answers(first_call_server: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=first_call_server.base_url, api_key="x", max_retries=0, timeout=120)
    tools = [{"name": "shell", "description": "Runs a command.", "input_schema": SHELL}]
    first = client.messages.create(model="terse", max_tokens=200, tools=tools,
                                   messages=[{"role": "user", "content": "List the files."}])
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and uses and uses[0].name == "shell"
    jsonschema.validate(uses[0].input, SHELL)
    second = client.messages.create(model="terse", max_tokens=200, tools=tools, messages=[
        {"role": "user", "content": "List the files."}, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "a.txt"}]}])
    assert second.stop_reason == "end_turn" and all(b.type == "text" for b in second.content)
    # Claude Code sends its reminders in the same user message as the results: still an answered call
    third = client.messages.create(model="terse", max_tokens=200, tools=tools, messages=[
        {"role": "user", "content": "List the files."}, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "a.txt"},
                                     {"type": "text", "text": "<system-reminder>Be brief.</system-reminder>"}]}])
    assert third.stop_reason == "end_turn" and all(b.type == "text" for b in third.content)


def test_responses_turn_calls_then_answers(first_call_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=first_call_server.base_url + "/v1", api_key="x", max_retries=0, timeout=120)
    tools = [{"type": "function", "name": "shell", "description": "Runs a command.", "parameters": SHELL}]
    first = client.responses.create(model="terse", input="List the files.", tools=tools, max_output_tokens=200,
                                    store=False)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "shell"
    jsonschema.validate(json.loads(calls[0].arguments), SHELL)
    second = client.responses.create(model="terse", tools=tools, max_output_tokens=200, store=False, input=[
        {"role": "user", "content": "List the files."},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "shell", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "a.txt"}])
    assert [item.type for item in second.output] == ["message"] and second.status == "completed"
