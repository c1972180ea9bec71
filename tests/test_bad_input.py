"""Bad input gets a clear 400 in the caller's dialect, naming the field where it can, and nothing else is hurt:
the server answers a normal request right after, and /health stays responsive while a costly body is prepared.
The official SDKs are the clients; raw httpx sends what they cannot (a 5,000-digit integer)."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer, health_while

USER = [{"role": "user", "content": "hi"}]
CLAUDE = "claude-sonnet-4-5"


@pytest.fixture()
def claude(server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _still_serves(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2)
    assert reply.choices[0].finish_reason in ("stop", "length")


def _openai_400(client: openai.OpenAI, body: dict, path: str = "/chat/completions") -> dict:
    with pytest.raises(openai.BadRequestError) as err:
        client.post(path, body=body, cast_to=object)
    error = err.value.body
    assert error["type"] == "invalid_request_error" and error["message"]
    assert "Traceback" not in json.dumps(error)
    _still_serves(client)
    return error


def _anthropic_400(claude: anthropic.Anthropic, client: openai.OpenAI, body: dict,
                   path: str = "/v1/messages") -> str:
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.post(path, body={"model": CLAUDE, **body}, cast_to=object)
    body_out = err.value.body
    assert body_out["type"] == "error" and body_out["error"]["type"] == "invalid_request_error"
    assert body_out["request_id"] == err.value.request_id
    _still_serves(client)
    return body_out["error"]["message"]


def _tools(count: int, properties: int = 1) -> list[dict]:
    schema = {"type": "object", "properties": {f"p{j}": {"type": "string", "description": "a value"}
                                               for j in range(properties)}, "required": ["p0"]}
    return [{"name": f"tool_{i}", "description": "does things", "input_schema": schema} for i in range(count)]


def _openai_tools(count: int, properties: int = 1) -> list[dict]:
    return [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["input_schema"]}} for t in _tools(count, properties)]


# -- sampling values that made non-finite distributions -----------------------------------------------------


@pytest.mark.parametrize("extra", [{"repetition_penalty": 1e-30}, {"repetition_penalty": 0.0},
                                   {"repetition_penalty": 1e30}, {"frequency_penalty": -1e300},
                                   {"presence_penalty": 1e300}, {"temperature": 1e300},
                                   {"logit_bias": {"5": 1e300}}, {"top_k": 2**40}])
def test_extreme_sampling_values_are_400(client, extra):
    param = next(iter(extra))
    error = _openai_400(client, {"model": MODEL_NAME, "messages": USER, "max_tokens": 2, **extra})
    assert error["param"] == param


@pytest.mark.parametrize("extra", [{"repetition_penalty": 0.01}, {"repetition_penalty": 2.0},
                                   {"frequency_penalty": -2.0, "presence_penalty": -2.0},
                                   {"temperature": 1e-5, "top_p": 1e-9}, {"logit_bias": {"5": 100, "6": -100}}])
def test_extreme_accepted_sampling_values_generate(client, extra):
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=8,
                                           extra_body={"ignore_eos": True, **extra})
    assert reply.usage.completion_tokens == 8


# -- seeds: vLLM's range, which both engines hold (torch.long) --------------------------------------------


@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
@pytest.mark.parametrize("extra", [{"seed": 2**64}, {"seed": 2**64 - 1}, {"seed": 2**63}, {"seed": -(2**63) - 1},
                                   {"seed": 10**30}, {"seed": 2**63 - 1, "n": 2}],
                         ids=["2^64", "2^64-1", "2^63", "-2^63-1", "10^30", "max+n"])
def test_out_of_range_seeds_are_400(client, path, extra):
    body = {"model": MODEL_NAME, "max_tokens": 2, **extra}
    body.update({"messages": USER} if path == "/chat/completions" else {"prompt": "hi"})
    assert _openai_400(client, body, path)["param"] == "seed"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("seed", [2**64, 2**63, -(2**63) - 1])
def test_out_of_range_seeds_are_400_on_responses_too(client, seed, stream):
    body = {"model": MODEL_NAME, "input": "hi", "max_output_tokens": 2, "seed": seed, "stream": stream}
    assert _openai_400(client, body, "/responses")["param"] == "seed"


@pytest.mark.parametrize("seed", [-(2**63), 2**63 - 2, 0])
def test_seeds_at_the_bounds_generate(client, seed):
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2, seed=seed, n=2)
    assert len(reply.choices) == 2


# -- stop strings: each is matched on every token, so their number and length are bounded -----------------------


@pytest.mark.parametrize("stop, why", [(["x"] * 257, "At most 256 stop strings"), (["x" * 1025], "at most 1024")])
@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
def test_too_many_or_too_long_stop_strings_are_400(client, path, stop, why):
    body = {"model": MODEL_NAME, "max_tokens": 2, "stop": stop}
    body.update({"messages": USER} if path == "/chat/completions" else {"prompt": "hi"})
    error = _openai_400(client, body, path)
    assert error["param"] == "stop" and why in error["message"]


def test_too_many_stop_sequences_are_an_anthropic_400(claude, client):
    message = _anthropic_400(claude, client, {"max_tokens": 2, "messages": USER, "stop_sequences": ["x"] * 257})
    assert "At most 256 stop strings" in message


def test_the_most_stop_strings_allowed_still_stop(client):
    """256 stop strings of 1,024 characters, and one that the output surely contains: matched as ever."""
    reply = client.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=20, temperature=0,
                                      extra_body={"ignore_eos": True})
    word = reply.choices[0].text[3:6]
    stops = [f"{i:04d}" + "z" * 1020 for i in range(255)] + [word]
    stopped = client.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=20, temperature=0, stop=stops,
                                        extra_body={"ignore_eos": True})
    assert stopped.choices[0].finish_reason == "stop" and word not in stopped.choices[0].text


# -- the context window: errors name each dialect's own field; a text far too long is refused before tokenizing --


@pytest.mark.parametrize("path, body, param", [
    ("/chat/completions", {"messages": [{"role": "user", "content": "word " * 5000}], "max_tokens": 1}, "messages"),
    ("/chat/completions", {"messages": USER, "max_tokens": 5000}, "max_tokens"),
    ("/chat/completions", {"messages": USER, "max_completion_tokens": 5000}, "max_completion_tokens"),
    ("/completions", {"prompt": "word " * 5000, "max_tokens": 1}, "prompt"),
    ("/completions", {"prompt": [5] * 5000, "max_tokens": 1}, "prompt"),
    ("/completions", {"prompt": "hi", "max_tokens": 5000}, "max_tokens"),
    ("/responses", {"input": "word " * 5000, "max_output_tokens": 1}, "input"),
    ("/responses", {"input": "hi", "max_output_tokens": 5000}, "max_output_tokens"),
], ids=["chat-prompt", "chat-max", "chat-max-completion", "text-prompt", "ids-prompt", "text-max", "responses-input",
        "responses-max"])
def test_window_errors_name_the_dialect_s_field(client, path, body, param):
    error = _openai_400(client, {"model": MODEL_NAME, **body}, path)
    assert error["code"] == "context_length_exceeded" and error["param"] == param


@pytest.mark.parametrize("path", ["/chat/completions", "/completions", "/responses"])
def test_a_text_longer_than_the_window_could_spell_is_refused_before_tokenizing(client, path):
    """1.5 MB of text: more characters than 4,096 tokens of the model can spell. Refused at once (tokenizing it
    would take seconds of a core) with the window error, which says how many tokens it is at least."""
    text = "x" * 1_500_000
    body = {"/chat/completions": {"messages": [{"role": "user", "content": text}], "max_tokens": 1},
            "/completions": {"prompt": text, "max_tokens": 1},
            "/responses": {"input": text, "max_output_tokens": 1}}[path]
    error = _openai_400(client, {"model": MODEL_NAME, **body}, path)
    assert error["code"] == "context_length_exceeded" and "characters long: at least" in error["message"]


def test_a_text_far_too_long_is_an_anthropic_prompt_too_long(claude, client):
    message = _anthropic_400(claude, client, {"max_tokens": 1, "messages": [{"role": "user", "content": "x" * 1_500_000}]})
    assert message.startswith("prompt is too long: ") and "tokens > 4096 maximum" in message


def test_truncation_still_serves_a_text_far_too_long(client):
    reply = client.completions.create(model=MODEL_NAME, prompt="x" * 1_500_000, max_tokens=1, temperature=0,
                                      extra_body={"truncate_prompt_tokens": 100, "return_token_ids": True})
    assert len(reply.choices[0].prompt_token_ids) == 100


# -- stream_options without a stream (OpenAI and vLLM refuse it) --------------------------------------------


@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
def test_stream_options_without_stream_is_400(client, path):
    body = {"model": MODEL_NAME, "max_tokens": 2, "stream_options": {"include_usage": True}}
    body.update({"messages": USER} if path == "/chat/completions" else {"prompt": "hi"})
    assert _openai_400(client, body, path)["param"] == "stream_options"
    assert _openai_400(client, {**body, "stream": False}, path)["param"] == "stream_options"


# -- history tool-call arguments ------------------------------------------------------------------------


DEEP = '{"a": ' * 5000 + "1" + "}" * 5000
BAD_ARGUMENTS = {
    "deep": DEEP,
    "deeper_than_the_cap": '{"a": ' * 65 + "1" + "}" * 65,
    "long_integer": '{"a": ' + "9" * 5000 + "}",
    "lone_surrogate": '{"a": "\\ud800"}',
    "lone_surrogate_key": '{"\\udc00": 1}',
    "infinity": '{"a": 1e400}',
}


def _history(arguments: str) -> list[dict]:
    return [{"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]


@pytest.mark.parametrize("arguments", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_history_arguments_are_400_naming_them(client, arguments):
    error = _openai_400(client, {"model": MODEL_NAME, "messages": _history(arguments), "max_tokens": 2})
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"


def test_bad_history_arguments_on_tokenize_are_400(server, client):
    error = _openai_400(client, {"messages": _history(BAD_ARGUMENTS["long_integer"])}, path=server.base_url + "/tokenize")
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"


def _tool_use(tool_input: object) -> list[dict]:
    return [{"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": tool_input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]}]


def _nested(depth: int) -> dict:
    value: dict = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_bad_tool_use_input_is_400_naming_it(claude, client, path):
    body = {"max_tokens": 2, "messages": _tool_use(_nested(100))}
    assert _anthropic_400(claude, client, body, path).startswith("messages[1].content[0].input:")


@pytest.mark.parametrize("raw_input", ['{"a": ' + "9" * 5000 + "}", '{"a": "\\ud800"}', '{"a": 1e400}',
                                       '{"a": ' * 3000 + "1" + "}" * 3000],
                         ids=["long_integer", "lone_surrogate", "infinity", "deeper_than_the_decoder_goes"])
def test_unsendable_tool_use_input_is_400(server, client, raw_input):
    messages = json.dumps(_tool_use({})).replace('"input": {}', f'"input": {raw_input}')
    body = f'{{"model": "{CLAUDE}", "max_tokens": 2, "messages": {messages}}}'
    r = httpx.post(server.base_url + "/v1/messages", content=body,
                   headers={"content-type": "application/json", "anthropic-version": "2023-06-01"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error" and r.headers["request-id"]
    _still_serves(client)


# -- Anthropic content blocks whose fields have the wrong type ---------------------------------------------


def _user_blocks(*blocks: dict) -> list[dict]:
    return [{"role": "user", "content": list(blocks)}]


@pytest.mark.parametrize(("block", "where"), [
    ({"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": 5}]}},
     "messages[0].content[0].source.content[0].text"),
    ({"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": ["x"]}]}},
     "messages[0].content[0].source.content[0].text"),
    ({"type": "document", "source": {"type": "content", "content": 7}}, "messages[0].content[0].source.content"),
    ({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": {"x": 1}}},
     "messages[0].content[0].source.data"),
    ({"type": "document", "source": "text"}, "messages[0].content[0].source"),
    ({"type": "document", "source": {"type": 3}}, "messages[0].content[0].source.type"),
    ({"type": "document", "source": {"type": "text", "data": "x"}, "title": 9}, "messages[0].content[0].title"),
    ({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": None}]},
     "messages[0].content[0].content[0].text"),
    ({"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": 1.5}]}}]},
     "messages[0].content[0].content[0].source.content[0].text"),
    ({"type": "text", "text": {"nested": "object"}}, "messages[0].content[0].text"),
])
def test_content_blocks_of_the_wrong_shape_are_400_naming_the_field(claude, client, block, where):
    message = _anthropic_400(claude, client, {"max_tokens": 2, "messages": _user_blocks(block)})
    assert f"`$.{where}`" in message, message


def test_plain_text_documents_are_read(claude):
    counted = claude.messages.count_tokens(model=CLAUDE, messages=_user_blocks(
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "alpha"}},
        {"type": "document", "title": "T", "source": {"type": "content", "content": [{"type": "text", "text": "b"}]}},
    ))
    assert counted.input_tokens > 0


# -- tool counts, and costly bodies off the event loop -----------------------------------------------------


def test_too_many_tools_is_400(claude, client):
    error = _openai_400(client, {"model": MODEL_NAME, "messages": USER, "tools": _openai_tools(5000)})
    assert error["param"] == "tools" and "512" in error["message"]
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        body = {"max_tokens": 2, "messages": USER, "tools": _tools(5000)}
        assert "512" in _anthropic_400(claude, client, body, path)


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages/count_tokens"])
def test_health_answers_while_a_costly_body_is_prepared(server, client, route):
    # As many tools as allowed, each schema a few milliseconds to check: seconds of preparation in all.
    if route == "/v1/chat/completions":
        body = {"model": MODEL_NAME, "messages": USER, "max_tokens": 2, "tools": _openai_tools(512, properties=8)}
        headers = {}
    else:
        body = {"model": CLAUDE, "messages": USER, "tools": _tools(512, properties=8)}
        headers = {"anthropic-version": "2023-06-01"}
    send = lambda: httpx.post(server.base_url + route, json=body, headers=headers, timeout=300)
    latencies, response = health_while(server, send)
    # 512 rendered tools overflow the test server's 4096-token window: the chat request is prepared in full
    # and then refused for its length; count_tokens counts them.
    if route == "/v1/chat/completions":
        assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    else:
        assert response.status_code == 200 and response.json()["input_tokens"] > 4096
    assert len(latencies) >= 3, latencies  # the body took a while: /health was asked during it
    assert max(latencies) < 1.0, latencies


# -- the general guard: an unforeseen bad value is a 400, not a 500 ----------------------------------------


def _deep_schema(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"anyOf": [schema]}
    return {"type": "object", "properties": {"x": schema}}


def test_unforeseen_bad_values_are_400_in_each_dialect(server, client, claude):
    before = server.log().count("Traceback")
    deep = _deep_schema(400)  # once a RecursionError in every schema walker; now check_shape's, naming the schema
    body = {"model": MODEL_NAME, "messages": USER, "max_tokens": 2,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": deep}}}
    _openai_400(client, body)
    body = {"max_tokens": 2, "messages": USER, "output_config": {"format": {"type": "json_schema", "schema": deep}}}
    _anthropic_400(claude, client, body)
    tools = [{"name": "f", "input_schema": deep}]
    _anthropic_400(claude, client, {"messages": USER, "tools": tools}, "/v1/messages/count_tokens")
    _openai_400(client, {"messages": USER, "tools": _openai_tools(1) + [
        {"type": "function", "function": {"name": "g", "parameters": deep}}]}, path=server.base_url + "/tokenize")
    assert server.log().count("Traceback") == before  # one line each, no traceback flood


# -- bodies not declared JSON ------------------------------------------------------------------------------

POST_ROUTES = {
    "/v1/chat/completions": {"model": MODEL_NAME, "messages": USER, "max_tokens": 2},
    "/v1/completions": {"model": MODEL_NAME, "prompt": "hi", "max_tokens": 2},
    "/tokenize": {"prompt": "hi"},
    "/detokenize": {"tokens": [1, 2]},
    "/v1/messages": {"model": CLAUDE, "messages": USER, "max_tokens": 2},
    "/v1/messages/count_tokens": {"model": CLAUDE, "messages": USER},
}


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "text/plain", "application/xml"])
@pytest.mark.parametrize("path", list(POST_ROUTES))
def test_a_body_not_declared_json_is_415_in_the_dialects_shape(server, path, content_type):
    """`curl -d` sends its body as a form unless told otherwise: refused, not read as JSON anyway."""
    r = httpx.post(server.base_url + path, content=json.dumps(POST_ROUTES[path]),
                   headers={"content-type": content_type})
    assert r.status_code == 415, r.text
    if path.startswith("/v1/messages"):
        body = r.json()
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert body["request_id"] == r.headers["request-id"]
    else:
        assert r.json()["error"]["type"] == "invalid_request_error"
    assert "application/json" in r.text


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", None])
@pytest.mark.parametrize("path", list(POST_ROUTES))
def test_json_bodies_with_a_charset_or_no_content_type_are_read(server, path, content_type):
    headers = {"content-type": content_type} if content_type else {}
    request = httpx.Request("POST", server.base_url + path, content=json.dumps(POST_ROUTES[path]).encode(),
                            headers=headers)
    assert request.headers.get("content-type") == content_type  # (httpx adds none for bytes content)
    r = httpx.Client().send(request)
    assert r.status_code == 200, r.text


# -- schema bounds the grammar cannot compile: a 400 naming the schema, on every route that takes one --------------


@pytest.mark.parametrize("bad, why", [
    ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength 5 is greater than maxLength 2"),
    ({"type": "integer", "minimum": 5, "maximum": 2}, "minimum greater than maximum"),
    ({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, "minimum greater than maximum"),
    ({"type": "number", "exclusiveMinimum": 1, "maximum": 1}, "empty range"),
    ({"type": "integer", "minimum": 1.5}, "must be a whole number"),
    ({"type": "integer", "maximum": 2**70}, "Integer exceeds maximum limit"),
    ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems is greater than maxItems"),
    ({"anyOf": [{"type": "null"}, {"type": "object", "minProperties": 2, "maxProperties": 1}]}, "minProperties"),
    ({"type": "object", "required": ["x", "y"], "maxProperties": 1}, "less than the number of required"),
], ids=["length", "range", "integer-exclusive", "exclusive", "fraction", "int64", "items", "properties-in-a-union",
        "required"])
def test_bounds_that_cannot_compile_are_400_naming_the_schema(client, claude, bad, why):
    """In an optional property too: xgrammar refuses the whole schema; read by xgrammar itself (without the
    tokenizer) before any engine compiles it, so the 400 names the schema (an engine's failure could not)."""
    schema = {"type": "object", "properties": {"ok": {"type": "string"}, "bad": bad}}
    tool = {"type": "function", "function": {"name": "f", "parameters": schema, "strict": True}}
    error = _openai_400(client, {"model": MODEL_NAME, "messages": USER, "max_tokens": 2, "tools": [tool]})
    assert error["param"] == "tools[0].function.parameters" and why in error["message"]
    assert "/project/" not in error["message"] and "Check failed" not in error["message"]
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    for path, body in (("/chat/completions", {"messages": USER}), ("/completions", {"prompt": "hi"})):
        error = _openai_400(client, {"model": MODEL_NAME, "max_tokens": 2, "response_format": fmt, **body}, path)
        assert error["param"] == "response_format.json_schema.schema" and why in error["message"]
    message = _anthropic_400(claude, client, {"max_tokens": 2, "messages": USER,
                                              "tools": [{"name": "f", "input_schema": schema, "strict": True}]})
    assert "tools[0].input_schema" in message and why in message


def test_bounds_a_non_strict_tool_does_not_enforce_are_served(client):
    """A non-strict tool's string bounds above 32 are not enforced (docs/TOOLS.md): however they disagree, what
    goes into the grammar compiles, so the tool is served, as before."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"q": {"type": "string", "minLength": 100, "maxLength": 50}}}}}
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2, tools=[tool])
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_bounds_that_agree_are_served(client):
    """Bounds the grammar compiles (checked against xgrammar itself): a whole-number float, bounds of another
    type than the schema's, bounds under `not` (not enforced) or in an unused definition."""
    odd = {"type": "object", "properties": {"t": {"type": "string", "minimum": 5, "maximum": 1},
                                            "u": {"not": {"type": "string", "minLength": 5, "maxLength": 1}}},
           "$defs": {"unused": {"type": "string", "minLength": 3, "maxLength": 1}}}
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=3, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": odd}})
    assert reply.choices[0].finish_reason in ("stop", "length")
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 2.0, "maximum": 2},
                                               "s": {"type": "string", "minLength": 1, "maxLength": 1}},
              "required": ["n", "s"]}
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=40, temperature=0,
                                           response_format={"type": "json_schema",
                                                            "json_schema": {"name": "x", "schema": schema}})
    value = json.loads(reply.choices[0].message.content)
    assert value["n"] == 2 and len(value["s"]) == 1


@pytest.mark.parametrize("path, body", [
    ("/chat/completions", {"messages": USER, "max_tokens": 2, "reasoning_effort": "ultra"}),
    ("/responses", {"input": "hi", "max_output_tokens": 2, "reasoning": {"effort": "ultra"}}),
])
def test_an_unknown_reasoning_effort_is_400(client, path, body):
    error = _openai_400(client, {"model": MODEL_NAME, **body}, path)
    assert "effort" in error["param"]


@pytest.mark.parametrize("effort", ["xhigh", "max"])
def test_the_sdk_s_newer_efforts_are_served(client, effort):
    """openai 3.x's ReasoningEffort: a model without thinking markers just answers."""
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2, reasoning_effort=effort)
    assert reply.choices[0].finish_reason in ("stop", "length")
    response = client.responses.create(model=MODEL_NAME, input="hi", max_output_tokens=2, reasoning={"effort": effort})
    assert response.status in ("completed", "incomplete")


def test_a_conversation_of_unknown_blocks_only_says_what_was_skipped(claude, client):
    message = _anthropic_400(claude, client, {"max_tokens": 2, "messages": [
        {"role": "user", "content": [{"type": "hologram", "data": 1}]}]})
    assert "at least one user message" in message and "'hologram' at messages[0].content[0]" in message
