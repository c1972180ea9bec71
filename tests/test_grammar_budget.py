"""Grammar cost as a budget (runtime/tools/budget.py, runtime/tools/regex_cost.py) and compiles that cannot hold
others up (runtime/engines/cpu/grammar.py): the estimator on the classes of schema that compile for minutes,
the shape and finiteness checks, the compile cache's isolation and memory of failures, and all of it live
through the official SDKs: bombs refused at once, or compiled without delaying a cheap tool request, /health
answering meanwhile."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from runtime.errors import InvalidRequest, Overloaded
from runtime.tools.budget import (
    DEFAULT_GRAMMAR_BUDGET,
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_NODES,
    check_finite,
    check_grammar_budget,
    check_shape,
    schema_charges,
)
from runtime.tools.regex_cost import pattern_cost
from runtime.tools.schemas import normalise_parameters, relax
from runtime.types import Constraint, ConstraintKind
from tests.claude_code.request import tools as claude_code_tools
from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer, health_while, start_server

USER = [{"role": "user", "content": "hi"}]
CLAUDE = "claude-sonnet-4-5"
# The issue's class: each bound small, the nest of them minutes to compile (11 s with the tests' 4k vocabulary).
NESTED = "^((a{0,30}){0,30}){0,30}$"


def _string(**keywords: object) -> dict:
    return {"type": "object", "properties": {"x": {"type": "string", **keywords}}, "required": ["x"]}


def _refused(schemas: list[tuple[str, dict]], budget: int = DEFAULT_GRAMMAR_BUDGET) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as err:
        check_grammar_budget(schemas, budget)
    return err.value


# -- the estimate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "positions"), [
    ("^a{0,30}$", 30),
    ("^[a-z]{3}-[0-9]{4}$", 8),
    ("^(.{10}){0,10}$", 100),  # a fixed-length body: the counts multiply
    ("^(.{0,5}){0,5}$", 625),  # a variable-length one: 25 positions, squared (measured 1.8 s, 49k vocabulary)
    ("^(.{0,2}){0,20}$", 1600),  # 40 positions; measured 9 s
    ("^(.*){0,5}$", 25),
    ("^a{0,100000}$", 256),  # above 128 copies xgrammar repeats one rule
])
def test_repetitions_multiply_and_ambiguous_ones_square(pattern, positions):
    assert pattern_cost(pattern).positions == positions


@pytest.mark.parametrize("pattern", [NESTED, "^((a{0,10}){0,10}){0,10}$", "^(.{0,8}){0,8}$", "^(x.{0,10}){0,10}$",
                                     "^(a+)+(b*)*(c?){0,500}$", "^((ab|a){1,40}){1,40}$"])
def test_nested_bounded_repetitions_are_over_the_budget(pattern):
    assert pattern_cost(pattern).positions > DEFAULT_GRAMMAR_BUDGET


@pytest.mark.parametrize("pattern", [
    r"^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$",
    r"^[a-zA-Z0-9._%+-]+@([a-zA-Z0-9-]+\.)+[a-zA-Z]{2,}$",
    r"^(/[^/]+)+/?$",
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$",
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
])
def test_delimited_repetitions_of_common_patterns_stay_cheap(pattern):
    """A body that starts or ends with a character nothing else in it matches splits one way: these compile in
    milliseconds (measured), and must not be estimated as if they were ambiguous."""
    assert pattern_cost(pattern).positions < 100


@pytest.mark.parametrize("pattern", ["(", ")", "[", "\\", "a{", "{1,2}", "a{2,1}", "(?<name>x)+", r"\p{L}+",
                                     r"\u{1F600}{3}", r"[\]-]+", "a{" + "9" * 5000 + "}", "(?=x)y", "((("])
def test_the_estimate_reads_any_text(pattern):
    assert pattern_cost(pattern).positions >= 0


def test_string_bounds_count_their_copies_once_per_grammar():
    seen: set = set()
    first = schema_charges(_string(maxLength=20), "a", seen)
    again = schema_charges(_string(minLength=0, maxLength=20), "b", seen)  # the same repetition: compiled once
    other = schema_charges(_string(minLength=5), "c", seen)
    assert [c.positions for c in first] == [20] and again == [] and [c.positions for c in other] == [6]
    assert [c.positions for c in schema_charges(_string(maxLength=100_000), "d", seen)] == [256]


def test_arrays_do_not_multiply_what_they_hold():
    """Measured: the items are one rule, referenced; a 30 x 30 x 30 nest of bounded arrays compiles in under a
    millisecond, and an array of 100 strings of maxLength 200 as fast as one such string."""
    nest: dict = {"type": "string", "maxLength": 30}
    for _ in range(3):
        nest = {"type": "array", "items": nest, "minItems": 1, "maxItems": 30}
    assert sum(c.positions for c in schema_charges(nest, "p", set())) == 30


def test_many_optional_properties_cost_their_square():
    schema = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(1000)}}
    assert [c.positions for c in schema_charges(schema, "p", set())] == [100]


def test_the_budget_names_the_keyword_and_where_the_schema_is():
    error = _refused([("tools[3].function.parameters", _string(pattern=NESTED))])
    assert error.param == "tools[3].function.parameters"
    assert "`pattern` at properties.x.pattern" in error.message and "--grammar-budget" in error.message


def test_the_budget_is_for_the_whole_grammar():
    """Each schema within the budget, together over it: the costliest keyword is named."""
    schemas = [(f"tools[{i}].function.parameters", _string(maxLength=100 + i)) for i in range(10)]
    check_grammar_budget(schemas[:8], DEFAULT_GRAMMAR_BUDGET)
    error = _refused(schemas)
    assert error.param == "tools[9].function.parameters" and "`maxLength`" in error.message
    check_grammar_budget(schemas, budget=2000)  # --grammar-budget raises it


def test_real_tool_lists_are_far_within_the_budget():
    for strict in (False, True):
        schemas = [(f"tools[{i}].input_schema", relax(normalise_parameters(t["input_schema"], "x"), strict=strict)[0])
                   for i, t in enumerate(claude_code_tools())]
        seen: set = set()
        assert sum(c.positions for p, s in schemas for c in schema_charges(s, p, seen)) < DEFAULT_GRAMMAR_BUDGET / 2
        check_grammar_budget(schemas, DEFAULT_GRAMMAR_BUDGET)


def test_costly_patterns_of_non_strict_schemas_are_relaxed_not_refused():
    schema = _string(pattern=NESTED)
    assert relax(schema)[0]["properties"]["x"] == {"type": "string"}
    kept, removed = relax(schema, strict=True)
    assert removed == [] and kept["properties"]["x"]["pattern"] == NESTED  # and then the budget refuses it
    assert relax(_string(pattern="^[a-z]{3}-[0-9]{4}$"))[0] == _string(pattern="^[a-z]{3}-[0-9]{4}$")


# -- shape and finiteness -------------------------------------------------------------------------------


def _nested(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def test_shape_bounds_depth_and_size_without_recursing():
    check_shape(_nested(MAX_SCHEMA_DEPTH // 2 - 1), "p")
    for levels in (MAX_SCHEMA_DEPTH // 2, 100, 100_000):
        with pytest.raises(InvalidRequest) as err:
            check_shape(_nested(levels), "tools[0].function.parameters")
        assert err.value.param == "tools[0].function.parameters" and "nests too deeply" in err.value.message
    wide = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(MAX_SCHEMA_NODES // 2)}}
    with pytest.raises(InvalidRequest, match="too large"):
        check_shape(wide, "p")


def test_deep_schemas_are_refused_before_the_schema_checker_recurses():
    with pytest.raises(InvalidRequest) as err:
        normalise_parameters(_nested(100), "tools[2].input_schema")
    assert err.value.param == "tools[2].input_schema"


DEFS = "$defs"


@pytest.mark.parametrize("schema", [
    {"$ref": "#"},
    {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]},
    {"properties": {"a": {"$ref": "#"}}, "required": ["a"]},  # xgrammar reads it as an object
    {"type": "array", "items": {"$ref": "#"}, "minItems": 1},
    {"anyOf": [{"$ref": "#"}, {"$ref": "#/anyOf/0"}]},
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, "required": ["a"],
     DEFS: {"x": {"type": "object", "properties": {"b": {"$ref": "#/$defs/x"}}, "required": ["b"]}}},
    {"type": "object", "properties": {"a": False}, "required": ["a"]},
    {"$ref": "#/$defs/d0", DEFS: {f"d{i}": {"$ref": f"#/$defs/d{(i + 1) % 3000}"} for i in range(3000)}},
], ids=["self", "required-self", "untyped-required-self", "array-min-self", "anyOf-cycle", "defs-cycle",
        "false-property", "long-ref-cycle"])
def test_schemas_no_finite_value_satisfies_are_refused(schema):
    with pytest.raises(InvalidRequest) as err:
        check_finite(schema, "response_format.json_schema.schema")
    assert err.value.param == "response_format.json_schema.schema" and "no finite value" in err.value.message


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"$ref": "#"}}},  # a tree: optional children
    {"anyOf": [{"$ref": "#"}, {"type": "null"}]},
    {"type": "array", "items": {"$ref": "#"}},
    {"type": ["object", "null"], "properties": {"a": {"$ref": "#"}}, "required": ["a"]},
    {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}},
     DEFS: {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}, "v": {"type": "integer"}},
                     "required": ["v"]}}},
    {"$ref": "https://example.com/schema.json"},  # not followed here
    {"$ref": "#/$defs/d0", DEFS: {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(3000)} | {
        "d3000": {"type": "string"}}},
])
def test_recursive_schemas_with_a_way_out_are_accepted(schema):
    check_finite(schema, "p")


# -- the compile cache ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def _cache(tokenizer, timeout: float = 60.0):
    from runtime.engines.cpu.grammar import GrammarCache

    return GrammarCache(tokenizer, len(tokenizer), (tokenizer.eos_token_id,), timeout=timeout)


def _json(schema: dict) -> Constraint:
    return Constraint(ConstraintKind.JSON_SCHEMA, json.dumps(schema))


SLOW = _json(_string(pattern="^((a{0,24}){0,24}){0,24}$"))  # 3 s with the tests' 4k vocabulary (unloaded)


def test_one_compile_per_constraint_however_many_wait(tiny_tokenizer):
    async def main() -> None:
        cache = _cache(tiny_tokenizer)
        grammars = await asyncio.gather(*(cache.get(_json(_string(maxLength=7))) for _ in range(5)))
        assert cache.compiles == 1 and all(g is grammars[0] for g in grammars)

    asyncio.run(main())


def test_a_failed_compile_is_remembered(tiny_tokenizer):
    async def main() -> None:
        cache = _cache(tiny_tokenizer)
        bad = Constraint(ConstraintKind.EBNF, "root ::= undefined_rule")
        with pytest.raises(InvalidRequest) as first:
            await cache.get(bad)
        with pytest.raises(InvalidRequest) as again:
            await cache.get(bad)
        assert cache.compiles == 1 and again.value.message == first.value.message
        assert first.value.message.startswith("Failed to compile the ebnf constraint")
        assert "/project" not in first.value.message  # xgrammar's log prefix is not the client's business

    asyncio.run(main())


def test_a_slow_compile_delays_only_its_own_requests_and_its_timeout_is_remembered(tiny_tokenizer):
    async def main() -> None:
        cache = _cache(tiny_tokenizer, timeout=1.5)
        slow = asyncio.ensure_future(cache.get(SLOW))
        await asyncio.sleep(0.2)
        await cache.get(_json(_string(maxLength=9)))  # compiled while the slow one runs
        assert not slow.done()
        with pytest.raises(InvalidRequest, match="took over 1.5 s"):
            await slow
        assert cache.overdue == 1
        started = time.perf_counter()
        with pytest.raises(InvalidRequest, match="took over 1.5 s"):
            await cache.get(SLOW)
        assert time.perf_counter() - started < 0.5 and cache.compiles == 2
        while cache.overdue:  # the thread runs on to its end, then is counted out
            await asyncio.sleep(0.2)
        with pytest.raises(InvalidRequest, match="took over 1.5 s"):  # still refused: the memo stands
            await cache.get(SLOW)

    asyncio.run(main())


def test_too_many_overdue_compiles_refuse_new_constraints_with_retry_after(tiny_tokenizer, monkeypatch):
    from runtime.engines.cpu import grammar

    monkeypatch.setattr(grammar, "MAX_OVERDUE_COMPILES", 1)

    async def main() -> None:
        cache = _cache(tiny_tokenizer, timeout=0.2)
        with pytest.raises(InvalidRequest):
            await cache.get(SLOW)
        with pytest.raises(Overloaded) as err:
            await cache.get(_json(_string(maxLength=11)))
        assert err.value.retry_after and err.value.retry_after > 0
        while cache.overdue:
            await asyncio.sleep(0.2)
        await cache.get(_json(_string(maxLength=11)))

    asyncio.run(main())


# -- live, through the SDKs -----------------------------------------------------------------------------


@pytest.fixture()
def claude(server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _openai_tool(schema: dict, *, strict: bool = True, name: str = "f") -> dict:
    return {"type": "function", "function": {"name": name, "parameters": schema, "strict": strict}}


def _openai_error(client: openai.OpenAI, body: dict, path: str = "/chat/completions") -> tuple[dict, float]:
    started = time.perf_counter()
    with pytest.raises(openai.BadRequestError) as err:
        client.post(path, body={"model": MODEL_NAME, "messages": USER, "max_tokens": 2, **body}, cast_to=object)
    error = err.value.body
    assert error["type"] == "invalid_request_error"
    return error, time.perf_counter() - started


def _anthropic_error(claude: anthropic.Anthropic, body: dict, path: str = "/v1/messages") -> str:
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.post(path, body={"model": CLAUDE, "max_tokens": 2, "messages": USER, **body}, cast_to=object)
    assert err.value.body["error"]["type"] == "invalid_request_error"
    return err.value.body["error"]["message"]


def _response_format(schema: dict, strict: bool = True) -> dict:
    json_schema = {"name": "r", "schema": schema, "strict": strict}
    return {"response_format": {"type": "json_schema", "json_schema": json_schema}}


def test_grammar_bombs_are_refused_at_once_naming_the_keyword(client, claude):
    bomb = _string(pattern=NESTED)
    error, took = _openai_error(client, {"tools": [_openai_tool(bomb)]})
    assert error["param"] == "tools[0].function.parameters" and "`pattern`" in error["message"] and took < 5
    error, took = _openai_error(client, _response_format(bomb))
    assert error["param"] == "response_format.json_schema.schema" and "`pattern`" in error["message"] and took < 5
    # A regex for the whole output (vLLM's structured_outputs, SGLang's regex) costs what a pattern does.
    for body, param in (({"structured_outputs": {"regex": NESTED}}, "structured_outputs.regex"),
                        ({"regex": NESTED}, "regex"), ({"guided_regex": NESTED}, "guided_regex")):
        error, took = _openai_error(client, body)
        assert error["param"] == param and "`pattern`" in error["message"] and took < 5
    strict_tool = [{"name": "f", "input_schema": bomb, "strict": True}]
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        assert "`pattern` at properties.x.pattern in tools[0].input_schema" in _anthropic_error(
            claude, {"tools": strict_tool}, path)


def test_a_non_strict_bomb_is_relaxed_and_served(client):
    """Non-strict schemas keep only cheap patterns (docs/TOOLS.md): the bomb's is not enforced, not compiled."""
    started = time.perf_counter()
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=4,
                                           tools=[_openai_tool(_string(pattern=NESTED), strict=False)])
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls") and time.perf_counter() - started < 30


DEEP = _nested(100)


def test_schemas_without_finite_values_are_400_with_param(client, claude):
    error, _ = _openai_error(client, {"tools": [_openai_tool({"type": "object", "$ref": "#"}, strict=False)]})
    assert error["param"] == "tools[0].function.parameters" and "no finite value" in error["message"]
    error, _ = _openai_error(client, _response_format({"$ref": "#"}, strict=False))
    assert error["param"] == "response_format.json_schema.schema"
    message = _anthropic_error(claude, {"output_config": {"format": {"type": "json_schema", "schema": {"$ref": "#"}}}})
    assert "output_config.format.schema" in message
    loop = {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        assert "tools[0].input_schema admits no finite value" in _anthropic_error(
            claude, {"tools": [{"name": "f", "input_schema": loop}]}, path)


def test_100_deep_schemas_are_400_on_every_route_that_takes_one(server, client, claude):
    before = server.log().count("Traceback")
    error, _ = _openai_error(client, {"tools": [_openai_tool(DEEP, strict=False)]})
    assert error["param"] == "tools[0].function.parameters" and "nests too deeply" in error["message"]
    error, _ = _openai_error(client, _response_format(DEEP, strict=False))
    assert error["param"] == "response_format.json_schema.schema"
    error, _ = _openai_error(client, {"tools": [_openai_tool(DEEP, strict=False)]}, path=server.base_url + "/tokenize")
    assert error["param"] == "tools[0].function.parameters"
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        assert "tools[0].input_schema nests too deeply" in _anthropic_error(
            claude, {"tools": [{"name": "f", "input_schema": DEEP}]}, path)
    message = _anthropic_error(claude, {"output_config": {"format": {"type": "json_schema", "schema": DEEP}}})
    assert "output_config.format.schema nests too deeply" in message
    assert server.log().count("Traceback") == before


@pytest.fixture()
def unbudgeted_server(served_model_args, server_logs) -> Iterator[LiveServer]:
    """No budget to speak of: grammar bombs reach the compiler (the limit on their time is not under test here:
    tests above hold the cache to it)."""
    s = start_server(*served_model_args, "--served-model-name", MODEL_NAME, "--context-length", "4096",
                     "--grammar-budget", str(10**18), "--grammar-timeout", "600", "--shutdown-timeout", "1",
                     log_dir=server_logs)
    yield s
    s.stop()  # the bombs' compiles end with the process


def test_a_cheap_tool_request_is_served_while_two_bombs_compile(unbudgeted_server):
    """Each bomb compiles for over 10 s of CPU (more with two at once, or a busy machine); the cheap request's
    grammar takes milliseconds. Served before either bomb is answered, it did not wait behind them (with the
    former shared pool of two compile threads it waited for one to finish). Measured by order, not by the
    clock, so a busy machine slows both sides alike."""
    server = unbudgeted_server
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=600)
    bombs = [_string(pattern=NESTED), _string(pattern=NESTED.replace("a", "b"))]  # distinct: two compiles
    answered: list[int] = []

    def send_bomb(i: int) -> None:
        try:
            client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2,
                                           tools=[_openai_tool(bombs[i])], tool_choice="required")
        except (openai.APIError, httpx.HTTPError):  # the server stops at the end of the test
            pass
        answered.append(i)

    for i in range(2):
        threading.Thread(target=send_bomb, args=(i,), daemon=True).start()
    time.sleep(1.0)  # both compiling now
    cheap: dict[str, object] = {}

    def send_cheap() -> object:
        reply = client.chat.completions.create(
            model=MODEL_NAME, messages=USER, max_tokens=80, tool_choice="required",
            tools=[_openai_tool({"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                                 "required": ["city"], "additionalProperties": False})])
        cheap["bombs_answered"] = len(answered)
        return reply

    health, reply = health_while(server, send_cheap)
    assert cheap["bombs_answered"] == 0 and not answered
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[attr-defined]
    assert call.function.name == "f" and len(json.loads(call.function.arguments)["city"]) <= 12
    assert health and max(health) < 1.0, health
