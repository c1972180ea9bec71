"""Output constraints as vLLM and SGLang scripts send them (structured_outputs, guided_*, SGLang's regex / ebnf /
json_schema, response_format structural_tag), through the OpenAI SDK against the tiny random model: whatever it
returns matches only because the grammar allowed nothing else."""

from __future__ import annotations

import json
import re

import jsonschema
import openai
import pytest
import xgrammar as xgr

from tests.conftest import MODEL_NAME

USER = [{"role": "user", "content": "Pick one."}]
CHOICES = ["Python", "Java", "C++", 'say "hi"\n']
IP = r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120}},
          "required": ["name", "age"], "additionalProperties": False}
SQL = """root ::= "SELECT " column " FROM " table " WHERE " column " = " number
column ::= "col_1" | "col_2"
table ::= "table_1" | "table_2"
number ::= [1-9] [0-9]?"""
SQL_RE = r"SELECT col_[12] FROM table_[12] WHERE col_[12] = [1-9][0-9]?"


def chat(client: openai.OpenAI, extra: dict, **kwargs) -> str:
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=60, extra_body=extra,
                                           **kwargs)
    assert reply.choices[0].finish_reason == "stop", reply
    return reply.choices[0].message.content


def complete(client: openai.OpenAI, extra: dict) -> str:
    reply = client.completions.create(model=MODEL_NAME, prompt="Answer:", max_tokens=60, extra_body=extra)
    assert reply.choices[0].finish_reason == "stop", reply
    return reply.choices[0].text


# -- each kind, in each spelling, on both routes --------------------------------------------------------------

SPELLINGS = {
    "choice": [{"structured_outputs": {"choice": CHOICES}}, {"guided_choice": CHOICES}],
    "regex": [{"structured_outputs": {"regex": IP}}, {"guided_regex": IP}, {"regex": IP}],
    "json": [{"structured_outputs": {"json": SCHEMA}}, {"structured_outputs": {"json": json.dumps(SCHEMA)}},
             {"guided_json": SCHEMA}, {"json_schema": json.dumps(SCHEMA)}],
    "grammar": [{"structured_outputs": {"grammar": SQL}}, {"guided_grammar": SQL}, {"ebnf": SQL}],
}


def check(kind: str, text: str) -> None:
    if kind == "choice":
        assert text in CHOICES, text
    elif kind == "regex":
        assert re.fullmatch(IP, text), text
    elif kind == "json":
        jsonschema.validate(json.loads(text), SCHEMA)
    else:
        assert re.fullmatch(SQL_RE, text), text


@pytest.mark.parametrize("route", ["chat", "completions"])
@pytest.mark.parametrize("kind", list(SPELLINGS))
def test_each_constraint_in_each_spelling(client, kind, route):
    for seed, extra in enumerate(SPELLINGS[kind]):
        extra_seeded = {**extra, "seed": seed}
        check(kind, chat(client, extra_seeded) if route == "chat" else complete(client, extra_seeded))


def test_choice_streamed_joins_to_a_choice(client):
    for seed in range(3):
        stream = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=20, stream=True, seed=seed,
                                                extra_body={"structured_outputs": {"choice": CHOICES}})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) in CHOICES


def test_choice_logprobs_stay_above_the_floor(client):
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=20, logprobs=True,
                                           top_logprobs=5, extra_body={"structured_outputs": {"choice": CHOICES}})
    assert all(t.logprob >= -9999.0 for e in reply.choices[0].logprobs.content for t in e.top_logprobs)


# -- structural tags (response_format type structural_tag, as SGLang and vLLM take it) ------------------------

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}}, "required": ["city"],
           "additionalProperties": False}


def _tagged(text: str) -> list[dict]:
    found = re.findall(r"<function=get_weather>(.*?)</function>", text, re.S)
    return [json.loads(body, strict=False) for body in found]  # (xgrammar lets raw control characters into strings)


def test_response_format_structural_tag_legacy_form(client):
    """SGLang's test shape: structures + triggers; text is free until a trigger, then the tag is enforced."""
    rf = {"type": "structural_tag", "triggers": ["<function="],
          "structures": [{"begin": "<function=get_weather>", "schema": WEATHER, "end": "</function>"}]}
    seen = 0
    for seed in range(4):
        reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=40, seed=seed,
                                               response_format=rf)
        text = reply.choices[0].message.content or ""
        for call in _tagged(text):
            jsonschema.validate(call, WEATHER)
            seen += 1
        assert text.count("<function=") == len(_tagged(text)) or reply.choices[0].finish_reason == "length"


def test_structural_tag_format_forces_the_tag(client):
    tag = {"type": "structural_tag", "format": {"type": "tag", "begin": "<function=get_weather>",
                                                "content": {"type": "json_schema", "json_schema": WEATHER,
                                                            "max_whitespace_cnt": 1},
                                                "end": "</function>"}}
    for extra in ({"response_format": tag}, {"structured_outputs": {"structural_tag": json.dumps(tag)}}):
        text = chat(client, {**extra, "seed": 3})
        assert text.startswith("<function=get_weather>") and text.endswith("</function>"), text
        jsonschema.validate(_tagged(text)[0], WEATHER)


def test_grammar_with_tool_choice_none_governs_the_whole_output(client):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}
    text = chat(client, {"structured_outputs": {"regex": IP}}, tools=[tool], tool_choice="none")
    assert re.fullmatch(IP, text), text


# -- invalid inputs are 400s naming the field -----------------------------------------------------------------

BAD_SCHEMA = {"type": "object", "properties": {"brand": {"type": "string"}, "foo": "bar"}}


@pytest.mark.parametrize(("extra", "param"), [
    ({"structured_outputs": {"regex": "[.*"}}, "structured_outputs.regex"),
    ({"structured_outputs": {"regex": {"1": "Python"}}}, "structured_outputs.regex"),
    ({"structured_outputs": {"grammar": "root ::= select_statementinvalidsyntax"}}, "structured_outputs.grammar"),
    ({"structured_outputs": {"json": BAD_SCHEMA}}, "structured_outputs.json"),
    ({"structured_outputs": {"json": "{not json"}}, "structured_outputs.json"),
    ({"structured_outputs": {"choice": []}}, "structured_outputs.choice"),
    ({"structured_outputs": {"structural_tag": '{"format": {"type": "nonsense"}}'}},
     "structured_outputs.structural_tag"),
    ({"structured_outputs": {"regex": "a+", "choice": ["a"]}}, "structured_outputs.choice"),
    ({"guided_regex": "(", }, "guided_regex"),
    ({"regex": "a+", "ebnf": 'root ::= "a"'}, "ebnf"),
    ({"response_format": {"type": "json_object"}, "guided_json": SCHEMA}, "guided_json"),
    ({"response_format": {"type": "structural_tag", "structures": "x", "triggers": []}}, "response_format"),
    ({"ebnf": "root ::= "}, "ebnf"),
])
@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
def test_invalid_constraints_are_400_naming_the_field(client, extra, param, path):
    body = {"model": MODEL_NAME, "max_tokens": 4, **extra}
    body.update({"messages": USER} if path == "/chat/completions" else {"prompt": "hi"})
    with pytest.raises(openai.BadRequestError) as err:
        client.post(path, body=body, cast_to=object)
    assert err.value.body["param"] == param, err.value.body
    assert "Traceback" not in err.value.body["message"] and "/project/cpp" not in err.value.body["message"]


@pytest.mark.parametrize("tool_choice", ["auto", "required"])
def test_a_grammar_with_callable_tools_is_400(client, tool_choice):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL_NAME, messages=USER, tools=[tool], tool_choice=tool_choice,
                                       extra_body={"guided_regex": IP})
    assert err.value.body["param"] == "tool_choice"


def test_choice_grammar_escapes_quotes_backslashes_and_control_characters():
    from runtime.constraints import choice

    options = ['a"b', "c\\d", "e\nf", "\x01", "é 北京", ""]
    grammar = xgr.Grammar.from_ebnf(choice(options, "choice").text)
    assert grammar is not None
