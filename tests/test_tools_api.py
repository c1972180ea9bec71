"""Function calling through the OpenAI SDK with the tiny random model, which never produces a valid call
by chance: every call it returns is valid only because the grammar made anything else impossible."""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import MODEL_NAME, TERSE_MODEL_NAME
from tests.live_server import tokens_through

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "获取指定城市的天气信息",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "城市名称", "maxLength": 20},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}

SCHEMAS = {
    "no_params": {"type": "object", "properties": {}},
    "nested": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "user": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 999},
                                                      "tags": {"type": "array", "items": {"type": "string",
                                                               "maxLength": 8}, "maxItems": 3}},
                     "required": ["id"], "additionalProperties": False},
            "mode": {"enum": ["fast", "slow"]},
        },
        "required": ["user", "mode"],
        "additionalProperties": False,
    },
    "nullable": {
        "type": "object",
        "properties": {"note": {"anyOf": [{"type": "string", "maxLength": 12}, {"type": "null"}]},
                       "count": {"type": "integer", "exclusiveMinimum": 0, "maximum": 10},
                       "flag": {"type": "boolean"}},
        "required": ["note", "count"],
    },
    "refs": {
        "type": "object",
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number", "minimum": -5, "maximum": 5},
                                                             "y": {"type": "number", "minimum": -5, "maximum": 5}},
                            "required": ["x", "y"], "additionalProperties": False}},
        "properties": {"points": {"type": "array", "items": {"$ref": "#/$defs/point"}, "minItems": 1, "maxItems": 2},
                       "kind": {"const": "path"}},
        "required": ["points", "kind"],
    },
    "strings": {
        "type": "object",
        "properties": {"code": {"type": "string", "minLength": 2, "maxLength": 6},
                       "pattern": {"type": "string", "pattern": "^[a-z]{3}$"},
                       "choice": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "string", "enum": ["x"]}]}},
        "required": ["code", "pattern", "choice"],
    },
}


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": f"Tool {name}", "parameters": SCHEMAS[name]}}


TOOL_SETS = {
    "weather": [WEATHER],
    "nested": [tool("nested")],
    "nullable+no_params": [tool("nullable"), tool("no_params")],
    "refs+strings": [tool("refs"), tool("strings")],
    "many": [WEATHER, *(tool(n) for n in SCHEMAS)],
}
SCHEMA_BY_NAME = {"get_weather": WEATHER["function"]["parameters"], **SCHEMAS}


def run(client: openai.OpenAI, tools: list, tool_choice, stream: bool, parallel: bool | None, seed: int,
        id_prefix: str = "call_", forced_max_tokens: int = 160, extra_body: dict | None = None):
    # The random model rarely ends free text by itself: auto/none get a shorter budget than forced calls.
    max_tokens = 60 if tool_choice in ("auto", "none") else forced_max_tokens
    kwargs = dict(model=MODEL_NAME, messages=[{"role": "user", "content": "Use the tools please"}], tools=tools,
                  tool_choice=tool_choice, max_tokens=max_tokens, temperature=1.0, seed=seed)
    if parallel is not None:
        kwargs["parallel_tool_calls"] = parallel
    if extra_body:
        kwargs["extra_body"] = extra_body
    if not stream:
        r = client.chat.completions.create(**kwargs)
        m = r.choices[0].message
        calls = [(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or []]
        return m.content, calls, r.choices[0].finish_reason
    calls: dict[int, list] = {}
    text = []
    finish = None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            text.append(delta.content)
        for tc in delta.tool_calls or []:
            if tc.index not in calls:
                assert tc.id and tc.id.startswith(id_prefix) and tc.type == "function" and tc.function.name
                calls[tc.index] = [tc.id, tc.function.name, tc.function.arguments or ""]
            else:
                assert tc.id is None and tc.function.name is None
                calls[tc.index][2] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert sorted(calls) == list(range(len(calls))), "call indexes are distinct and contiguous"
    return "".join(text) or None, [tuple(calls[i]) for i in sorted(calls)], finish


def check(result, tools, tool_choice, parallel, id_prefix: str = "call_"):
    content, calls, finish = result
    names = {t["function"]["name"] for t in tools}
    if finish == "length":
        return  # truncated output is not a finished call; the rest of the suite bounds this
    for call_id, name, arguments in calls:
        assert call_id.startswith(id_prefix)
        assert name in names
        jsonschema.validate(json.loads(arguments), SCHEMA_BY_NAME[name])
    if tool_choice == "none":
        assert calls == [] and finish == "stop"
    elif tool_choice == "required":
        assert len(calls) >= 1 and finish == "tool_calls" and content is None
    elif isinstance(tool_choice, dict):
        assert len(calls) == 1 and calls[0][1] == tool_choice["function"]["name"] and finish == "tool_calls"
    else:  # auto
        assert finish == ("tool_calls" if calls else "stop")
    if parallel is False:
        assert len(calls) <= 1


def cases():
    modes = ["auto", "required", "none", "named"]
    for (set_name, tools), mode, stream, parallel in itertools.product(TOOL_SETS.items(), modes, (False, True),
                                                                       (None, False)):
        choice = {"type": "function", "function": {"name": tools[-1]["function"]["name"]}} if mode == "named" else mode
        yield set_name, tools, choice, stream, parallel


def test_every_returned_call_validates_in_every_mode(client):
    jobs = []
    for seed, (set_name, tools, choice, stream, parallel) in enumerate(itertools.chain(cases(), cases(), cases())):
        jobs.append((set_name, tools, choice, stream, parallel, seed))
    assert len(jobs) >= 200

    def one(job):
        set_name, tools, choice, stream, parallel, seed = job
        return job, run(client, tools, choice, stream, parallel, seed)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, jobs))
    forced = truncated = calls_seen = 0
    for (set_name, tools, choice, stream, parallel, seed), result in results:
        try:
            check(result, tools, choice, parallel)
        except (AssertionError, jsonschema.ValidationError, json.JSONDecodeError) as exc:
            pytest.fail(f"{set_name} choice={choice} stream={stream} parallel={parallel} seed={seed}: {exc}\n{result}")
        calls_seen += len(result[1])
        if choice not in ("auto", "none"):
            forced += 1
            truncated += result[2] == "length"
    print(f"\n{len(results)} requests, {calls_seen} calls, {truncated} of {forced} forced ones cut by max_tokens")
    # Forced calls must mostly finish, or the validity figures would be about too few calls.
    assert truncated < forced * 0.15
    assert calls_seen >= forced * 0.8


def test_streamed_arguments_join_to_the_non_streamed_ones(client):
    for seed in range(6):
        kwargs = dict(tools=TOOL_SETS["many"], tool_choice="required", parallel=None, seed=seed)
        plain = run(client, stream=False, **kwargs)
        streamed = run(client, stream=True, **kwargs)
        plain_calls, streamed_calls = [(n, a) for _, n, a in plain[1]], [(n, a) for _, n, a in streamed[1]]
        assert plain[2] == streamed[2]
        # A call cut off by max_tokens is left out of the non-streamed response; a stream already sent it.
        unfinished = 1 if plain[2] == "length" and len(streamed_calls) > len(plain_calls) else 0
        assert plain_calls == streamed_calls[: len(streamed_calls) - unfinished]


def test_multi_turn_with_tool_results(client):
    first = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "北京今天天气怎么样？"}],
                                           tools=[WEATHER], tool_choice="required", max_tokens=200, seed=1)
    message = first.choices[0].message
    assert message.content is None and message.tool_calls
    history = [{"role": "user", "content": "北京今天天气怎么样？"}, message.model_dump(exclude_none=True)]
    for call in message.tool_calls:
        history.append({"role": "tool", "tool_call_id": call.id, "content": [{"type": "text", "text": "晴, 25°C"}]})
    second = client.chat.completions.create(model=MODEL_NAME, messages=history, tools=[WEATHER], tool_choice="none",
                                            max_tokens=20)
    assert second.choices[0].message.tool_calls is None
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def test_response_format_json_schema_and_json_object(client):
    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 10},
                                               "score": {"type": "integer", "minimum": 0, "maximum": 5}},
              "required": ["answer", "score"], "additionalProperties": False}
    finished = 0
    for seed in range(3):
        r = client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "rate it"}], max_tokens=200, seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "rating", "schema": schema, "strict": True}})
        if r.choices[0].finish_reason == "stop":
            jsonschema.validate(json.loads(r.choices[0].message.content), schema)
            finished += 1
        # json_object leaves strings unbounded, which the random model hardly ever closes: a cut-off document
        # is the common outcome, and it is still an object's beginning.
        r = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "json"}],
                                           max_tokens=200, seed=seed, response_format={"type": "json_object"})
        content = r.choices[0].message.content
        assert content.lstrip().startswith("{"), content
        if r.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(content), dict)
    assert finished, "no bounded json_schema document finished within 200 tokens"


def test_response_format_with_tools_auto_is_json_or_calls(client):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    finishes = set()
    for seed in range(4):
        content, calls, finish = run_rf(client, schema, seed)
        finishes.add(finish)
        if finish == "tool_calls":
            assert calls and content is None
        elif finish == "stop":
            jsonschema.validate(json.loads(content), schema)
    assert "tool_calls" in finishes  # the random model favours the call trigger; the JSON side is below


def test_response_format_with_tools_auto_json_side(terse_server):
    # The terse model never starts a call, so the same request gives the JSON document, valid and finished.
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    client = openai.OpenAI(base_url=terse_server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)
    for seed in range(2):
        content, calls, finish = run_rf(client, schema, seed, model=TERSE_MODEL_NAME)
        assert finish == "stop" and not calls, (finish, calls)
        jsonschema.validate(json.loads(content), schema)


def run_rf(client, schema, seed, model=MODEL_NAME):
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "go"}], tools=[WEATHER], tool_choice="auto",
        max_tokens=200, seed=seed, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    m = r.choices[0].message
    return m.content, m.tool_calls, r.choices[0].finish_reason


def test_strict_tool_with_unenforceable_keyword_is_400_naming_it(client):
    strict = {"type": "function", "function": {"name": "pick", "strict": True, "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}, "required": ["n"]}}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "x"}], tools=[strict])
    assert "pick" in err.value.body["message"] and "multipleOf" in err.value.body["message"]
    relaxed = json.loads(json.dumps(strict))
    relaxed["function"]["strict"] = False
    r = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "x"}], tools=[relaxed],
                                       tool_choice="required", max_tokens=100)
    assert r.choices[0].finish_reason in ("tool_calls", "length")


def test_named_choice_for_unknown_tool_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "x"}], tools=[WEATHER],
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    assert err.value.body["param"] == "tool_choice"


def test_stop_strings_never_cut_a_call(client):
    # Hermes calls contain "\n" and "}"; as stop strings they apply to the text outside calls only.
    for seed in range(3):
        r = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "go"}],
                                           tools=[WEATHER], tool_choice="required", parallel_tool_calls=False,
                                           max_tokens=160, seed=seed, stop=["\n", "}"])
        if r.choices[0].finish_reason == "length":
            continue
        assert r.choices[0].finish_reason == "tool_calls"
        jsonschema.validate(json.loads(r.choices[0].message.tool_calls[0].function.arguments),
                            WEATHER["function"]["parameters"])
    # With tools in auto mode the stop strings are matched above the call parser (not in the engine).
    free = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "go"}],
                                          tools=[WEATHER], tool_choice="auto", max_tokens=40, temperature=0,
                                          logprobs=True, extra_body={"ignore_eos": True})
    assert free.choices[0].message.tool_calls is None  # the greedy output of this tiny model is text
    text = free.choices[0].message.content
    stop = text[5:8]
    cut = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "go"}],
                                         tools=[WEATHER], tool_choice="auto", max_tokens=40, temperature=0,
                                         stop=[stop], logprobs=True, extra_body={"ignore_eos": True})
    assert cut.choices[0].finish_reason == "stop" and cut.choices[0].message.content == text[: text.index(stop)]
    # The engine ran on while its abort travelled: the usage still ends at the stop string's token.
    assert cut.usage.completion_tokens == tokens_through(free.choices[0].logprobs.content, stop)
    assert len(cut.choices[0].logprobs.content) == cut.usage.completion_tokens


def test_first_chunk_of_a_call_has_null_content(client):
    """A choice that starts with a call opens with role and call in one delta, content null (as OpenAI sends
    it): an empty-string content there makes @ai-sdk/openai emit an empty text part."""
    stream = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "Weather?"}],
                                            tools=[WEATHER], tool_choice="required", max_tokens=200, stream=True)
    raw = [c.model_dump(exclude_unset=True) for c in stream]
    first = raw[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None and first["tool_calls"][0]["function"]["name"]
    assert not any(c["choices"] and c["choices"][0]["delta"].get("content") == "" for c in raw)
    text = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "Hi"}],
                                          max_tokens=3, stream=True)
    assert next(iter(text)).model_dump(exclude_unset=True)["choices"][0]["delta"] == {"role": "assistant",
                                                                                      "content": ""}


def _token_id(server, text: str) -> int:
    ids = httpx.post(server.base_url + "/tokenize", json={"prompt": text, "add_special_tokens": False}).json()["tokens"]
    assert len(ids) == 1, ids
    return ids[0]


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}],
                         ids=["required", "named"])
def test_forced_call_cut_before_its_tag_completes_leaks_no_text(server, client, choice):
    """max_tokens ends a forced call after `<` (the bias makes it the first token; the grammar allows it, as
    the start of `<tool_call>`): no tag text reaches content, streamed or not (docs/TOOLS.md)."""
    bias = {str(_token_id(server, "<")): 100}
    kwargs = dict(model=MODEL_NAME, messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER],
                  tool_choice=choice, max_tokens=1, temperature=0, logit_bias=bias)
    answer = client.chat.completions.create(**kwargs)
    assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 1
    assert not answer.choices[0].message.content and not answer.choices[0].message.tool_calls
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "length"
