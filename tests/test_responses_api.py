"""The Responses API (/v1/responses) through the openai SDK (`responses.create`, `.stream`, `.parse`,
`.retrieve`, `.delete`, `.input_items.list`) against a server with the tiny random model: every tool call and
JSON answer it returns is valid only because the grammar made anything else impossible."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import openai
import pydantic
import pytest

from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer, start_server

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 12},
                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOL = {"type": "function", "name": "get_weather", "description": "Current weather for a city.",
        "parameters": WEATHER, "strict": True}
QUESTION = "What's the weather in Paris?"


@pytest.fixture(scope="module")
def responses_server(served_model_args: list[str], server_logs: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    store = tmp_path_factory.mktemp("store") / "conversations.sqlite3"
    s = start_server(*served_model_args, "--served-model-name", MODEL_NAME, "--context-length", "4096",
                     "--responses-store", str(store), log_dir=server_logs)
    yield s
    s.stop()


@pytest.fixture()
def oai(responses_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=responses_server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_create_text(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model=MODEL_NAME, input="Say hello.", instructions="Be brief.",
                                    max_output_tokens=8, temperature=0, metadata={"k": "v"})
    assert response.id.startswith("resp_") and response.object == "response" and response.model == MODEL_NAME
    assert response.status in ("completed", "incomplete")
    if response.status == "incomplete":
        assert response.incomplete_details.reason == "max_output_tokens"
        assert response.output[-1].status == "incomplete"
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert response.output_text == message.content[0].text and response.output_text
    usage = response.usage
    assert usage.input_tokens > 0 and 0 < usage.output_tokens <= 8
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens >= 0
    assert response.instructions == "Be brief." and response.metadata == {"k": "v"} and response.store is True


def _check_sequence(events: list) -> None:
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    assert events[-1].type in ("response.completed", "response.incomplete")


def test_stream_events_in_order_and_the_same_as_stored(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model=MODEL_NAME, input="Say hello.", max_output_tokens=12, temperature=0) as stream:
        events = list(stream)
    _check_sequence(events)
    final = events[-1].response  # response.incomplete at the token limit (the SDK's final response needs completed)
    types = [e.type for e in events]
    assert types[2:5] == ["response.output_item.added", "response.content_part.added", "response.output_text.delta"]
    tail = [t for t in types if not t.endswith(".delta")][-4:-1]
    assert tail == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text and text
    assert events[-1].response.id == final.id
    stored = oai.responses.retrieve(final.id)
    assert stored.output_text == final.output_text and stored.usage == final.usage
    # Non-streamed at temperature 0: the same text (one code path: the non-streamed answer is the stream's fold).
    whole = oai.responses.create(model=MODEL_NAME, input="Say hello.", max_output_tokens=12, temperature=0)
    assert whole.output_text == final.output_text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_function_call_is_enforced(oai: openai.OpenAI, stream: bool) -> None:
    kwargs = dict(model=MODEL_NAME, input=QUESTION, tools=[TOOL], tool_choice="required", max_output_tokens=200,
                  parallel_tool_calls=False)
    if stream:
        with oai.responses.stream(**kwargs) as s:
            events = list(s)
            response = s.get_final_response()
        _check_sequence(events)
        deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert len(done) == 1 and done[0].arguments == deltas
    else:
        response = oai.responses.create(**kwargs)
    calls = [item for item in response.output if item.type == "function_call"]
    assert response.status == "completed" and len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_") and call.status == "completed"
    jsonschema.validate(json.loads(call.arguments), WEATHER)


def test_previous_response_id_continues_and_delete_forgets(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model=MODEL_NAME, input=QUESTION, tools=[TOOL], tool_choice="required",
                                 max_output_tokens=200, parallel_tool_calls=False)
    call = next(item for item in first.output if item.type == "function_call")
    second = oai.responses.create(
        model=MODEL_NAME, previous_response_id=first.id, tools=[TOOL], max_output_tokens=4,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees, sunny"}])
    assert second.previous_response_id == first.id
    # The prompt holds the first turn (question, call) and the result: more than the first prompt.
    assert second.usage.input_tokens > first.usage.input_tokens
    items = oai.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["function_call_output"] and items.data[0].id
    assert oai.responses.input_items.list(first.id, order="asc").data[0].type == "message"
    assert oai.responses.retrieve(first.id).output[0].type == "function_call"
    deleted = oai.responses.delete(first.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model=MODEL_NAME, previous_response_id=second.id, input="And tomorrow?",
                             max_output_tokens=4)
    assert err.value.code == "previous_response_not_found" and err.value.param == "previous_response_id"


def test_a_stored_response_can_be_continued_twice(oai: openai.OpenAI) -> None:
    """OpenAI's Responses branch: any stored response may be continued, any number of times, each branch seeing
    only its own chain (unlike an Anthropic thread, which is linear: test_anthropic_tools.py)."""
    first = oai.responses.create(model=MODEL_NAME, input="Remember the word apple.", max_output_tokens=4)
    long = oai.responses.create(model=MODEL_NAME, previous_response_id=first.id, max_output_tokens=4,
                                input="Now a much longer turn, with many more words in it than the next one has.")
    branch = oai.responses.create(model=MODEL_NAME, previous_response_id=first.id, input="And?", max_output_tokens=4)
    again = oai.responses.create(model=MODEL_NAME, previous_response_id=first.id, input="And?", max_output_tokens=4)
    after_long = oai.responses.create(model=MODEL_NAME, previous_response_id=long.id, input="And?",
                                      max_output_tokens=4)
    assert branch.previous_response_id == again.previous_response_id == first.id
    # Both branches from `first` hold the same history (not `long`'s turn); continuing `long` holds more.
    assert branch.usage.input_tokens == again.usage.input_tokens
    assert after_long.usage.input_tokens > branch.usage.input_tokens + 10


def test_store_false_is_not_kept(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model=MODEL_NAME, input="Hi", max_output_tokens=2, store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(response.id)


class Weather(pydantic.BaseModel):
    city: str = pydantic.Field(max_length=12)
    unit: str = pydantic.Field(pattern="^(celsius|fahrenheit)$")


def test_parse_structured_output(oai: openai.OpenAI) -> None:
    response = oai.responses.parse(model=MODEL_NAME, input=QUESTION, text_format=Weather, max_output_tokens=200)
    assert response.status == "completed"
    assert isinstance(response.output_parsed, Weather)
    plain = oai.responses.create(model=MODEL_NAME, input=QUESTION, text={"format": {"type": "json_object"}},
                                 max_output_tokens=200)
    if plain.status == "completed":
        assert isinstance(json.loads(plain.output_text), dict)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("syntax,definition,pattern", [
    ("lark", 'start: "*** Begin Patch\\n" LINE+ "*** End Patch"\nLINE: /[+-][a-z "]{1,6}\\n/',
     r'\*\*\* Begin Patch\n([+-][a-z "]{1,6}\n)+\*\*\* End Patch'),
    ("regex", r'"[a-c\\]{1,4}"\t?', r'"[a-c\\]{1,4}"\t?'),
], ids=["lark", "regex"])
def test_custom_tool_input_follows_its_grammar(oai: openai.OpenAI, stream: bool, syntax: str, definition: str,
                                               pattern: str) -> None:
    """Codex's freeform `custom` tools: the call carries text, not JSON, and that text follows the tool's Lark or
    regex grammar (newlines, quotes and backslashes included), whatever the random model would have written."""
    custom = {"type": "custom", "name": "apply_patch", "description": "Apply a patch.",
              "format": {"type": "grammar", "syntax": syntax, "definition": definition}}
    kwargs = dict(model=MODEL_NAME, input="Patch it.", tools=[custom], max_output_tokens=300,
                  tool_choice={"type": "custom", "name": "apply_patch"})
    if stream:
        with oai.responses.stream(**kwargs) as s:
            events = list(s)
        _check_sequence(events)
        response = events[-1].response
        done = [e for e in events if e.type == "response.custom_tool_call_input.done"]
        deltas = "".join(e.delta for e in events if e.type == "response.custom_tool_call_input.delta")
        assert len(done) == 1 and done[0].input == deltas
    else:
        response = oai.responses.create(**kwargs)
    calls = [item for item in response.output if item.type == "custom_tool_call"]
    assert response.status == "completed" and len(calls) == 1 and calls[0].name == "apply_patch"
    assert re.fullmatch(pattern, calls[0].input), calls[0].input


def test_namespace_tools_and_web_search(oai: openai.OpenAI, responses_server: LiveServer) -> None:
    """Codex's `namespace` groups: calls name the namespace again; its `web_search` is ignored."""
    namespace = {"type": "namespace", "name": "weather_v1", "description": "Weather tools.",
                 "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}]}
    body = {"model": MODEL_NAME, "input": QUESTION, "tools": [namespace, {"type": "web_search"}],
            "tool_choice": "required", "max_output_tokens": 200}
    raw = httpx.post(responses_server.base_url + "/v1/responses", json=body, timeout=120)
    assert raw.status_code == 200, raw.text
    call = next(item for item in raw.json()["output"] if item["type"] == "function_call")
    assert call["namespace"] == "weather_v1" and call["name"] == "get_weather"
    jsonschema.validate(json.loads(call["arguments"]), WEATHER)
    # The call goes back as history with its namespace.
    again = httpx.post(responses_server.base_url + "/v1/responses", timeout=120, json={
        **body, "tool_choice": "auto", "max_output_tokens": 2,
        "input": [{"role": "user", "content": QUESTION}, call,
                  {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})
    assert again.status_code == 200, again.text


@pytest.mark.parametrize("tool,param", [({"type": "file_search", "vector_store_ids": ["vs_1"]}, "tools[0].type"),
                                        ({"type": "code_interpreter", "container": {"type": "auto"}}, "tools[0].type")])
def test_hosted_tools_are_a_clear_400(oai: openai.OpenAI, tool: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model=MODEL_NAME, input="Hi", tools=[tool], max_output_tokens=2)
    assert err.value.param == param and "not supported" in err.value.message


def test_errors_in_openai_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve("resp_missing")
    stored = oai.responses.create(model=MODEL_NAME, input="hi", max_output_tokens=2)
    with pytest.raises(openai.BadRequestError) as err:  # a stored response is not kept as a stream to replay
        oai.responses.retrieve(stored.id, stream=True)
    assert err.value.param == "stream"
    assert oai.responses.retrieve(stored.id, extra_query={"stream": "false"}).id == stored.id
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model=MODEL_NAME, input="hi", max_output_tokens=2, tools=[
            {"type": "custom", "name": "f", "format": {"type": "grammar", "syntax": "regex", "definition": "(a"}}])
    assert err.value.param == "tools[0].format.definition" and "/project/" not in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model=MODEL_NAME, input="hi", max_output_tokens=2, tool_choice={"type": "custom",
                             "name": "f"}, tools=[{"type": "function", "name": "f", "parameters": {}}])
    assert "which is a function tool, not a custom one" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model=MODEL_NAME, input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": "https://example.com/a.png"}]}], max_output_tokens=2)
    assert err.value.param == "input[0].content[0]"
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model=MODEL_NAME, input="x " * 5000, max_output_tokens=2)
    assert err.value.code == "context_length_exceeded"
