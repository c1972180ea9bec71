"""The XML-ish tool formats (Qwen3-Coder, GLM-4.5/4.7, MiniMax M2, DeepSeek V3.2's DSML) write a string
parameter's value as raw text, but a bounded or enumerated string as `ws? value ws?`: whatever text their grammar
accepts, the parser must read back a value that validates, however the schema nests the string (its own bounds,
an anyOf / oneOf branch, an allOf of several, a $ref)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import xgrammar as xgr
from transformers import AutoConfig, AutoTokenizer

from runtime.tools.registry import get_format
from runtime.tools.plan import plan_chat
from runtime.tools.schemas import relax
from runtime.types import ChatRequest, Message, Tool, ToolCall, ToolChoice, ToolChoiceMode
from tests.test_tool_formats import collect
from tests.tiny_model import build_tiny_model

# format -> the tiny model family whose tokenizer has its markers
FORMATS = {"qwen3_coder": "qwen3_5", "glm45": "glm45", "glm47": "glm47", "minimax": "minimax",
           "deepseek_v32": "deepseek_v32"}

SCHEMAS = {
    "bounded": {"type": "string", "minLength": 2, "maxLength": 4},
    "anyOf bounded or null": {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]},
    "oneOf bounded or integer": {"oneOf": [{"type": "string", "minLength": 2, "maxLength": 4}, {"type": "integer"}]},
    "allOf bounded": {"allOf": [{"type": "string", "minLength": 2, "maxLength": 4}]},
    "allOf two bounds": {"allOf": [{"type": "string", "minLength": 2}, {"maxLength": 4}]},
    "allOf pattern": {"allOf": [{"type": "string", "pattern": "^[a-z ]{2,4}$"}]},
    "enum": {"enum": ["a b", "cd"]},
    "anyOf enum or null": {"anyOf": [{"enum": ["a b", "cd"]}, {"type": "null"}]},
    "oneOf enum or integer": {"oneOf": [{"enum": ["a b", "cd"]}, {"type": "integer"}]},
    "allOf enum": {"allOf": [{"enum": ["a b", "cd"]}]},
    "allOf const": {"allOf": [{"type": "string"}, {"const": "a b"}]},
    "$ref bounded": {"$ref": "#/$defs/short"},
}
# Values with the whitespace a grammar may put around them (one character each side, as xgrammar writes them).
VALUES = ["ab", " ab ", "\nab\n", "a b", " a b ", "\na b\n", "cd", " cd\n", "abcd", " abcd", "\tab"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("xml-families")
    return {fmt: build_tiny_model(root / family, family=family) for fmt, family in FORMATS.items()}


def _compiler(model_dir: Path) -> tuple[xgr.GrammarCompiler, object]:
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    config = AutoConfig.from_pretrained(str(model_dir))
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=config.vocab_size,
                                              stop_token_ids=[tokenizer.eos_token_id])
    return xgr.GrammarCompiler(info, max_threads=1), tokenizer


def _accepts(compiled: xgr.CompiledGrammar, tokenizer, text: str) -> bool:
    matcher = xgr.GrammarMatcher(compiled)
    ok = all(matcher.accept_token(t) for t in tokenizer.encode(text, add_special_tokens=False))
    return ok and matcher.accept_token(tokenizer.eos_token_id) and matcher.is_terminated()


@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_every_accepted_string_value_reads_back_valid(models, fmt_name) -> None:
    fmt = get_format(fmt_name)
    compiler, tokenizer = _compiler(models[fmt_name])
    accepted = 0
    for label, value_schema in SCHEMAS.items():
        params = {"type": "object", "properties": {"v": value_schema}, "required": ["v"],
                  "$defs": {"short": {"type": "string", "minLength": 2, "maxLength": 4}}}
        tool = Tool("f", "", params)
        # As a request plans it: the schema relaxed and merged into what the grammar enforces.
        request = ChatRequest((Message("user", "?"),), tools=(tool,),
                              tool_choice=ToolChoice(ToolChoiceMode.REQUIRED, None, False))
        plan = plan_chat(request, fmt, True)
        compiled = compiler.compile_structural_tag(plan.constraint.text)
        placeholder = "QQQQ"
        template = fmt.render_calls((ToolCall("call_1", "f", {"v": placeholder}),))
        assert placeholder in template, label
        for value in VALUES:
            text = template.replace(placeholder, value)
            if not _accepts(compiled, tokenizer, text):
                continue
            accepted += 1
            parser = plan_chat(request, fmt, True).parser
            _, calls = collect([*parser.feed(text), *parser.finish()])
            assert len(calls) == 1, (label, value)
            arguments = json.loads(calls[0][1])
            jsonschema.validate(arguments, params)  # the grammar let it through: it must read back valid
            assert arguments["v"].strip() == value.strip(), (label, value, arguments)
    assert accepted >= len(SCHEMAS) * 3  # the check ran on real calls, not on refusals


def _json_accepts(schema: dict, text: str) -> bool:
    grammar = xgr.Grammar.from_json_schema(json.dumps(schema))
    return xgr.testing._is_grammar_accept_string(grammar, text)


def test_an_allof_of_several_parts_is_merged_so_that_json_formats_enforce_it_too() -> None:
    # xgrammar enforces none of a several-part allOf (any string passed this one): relax() merges it.
    schema = {"allOf": [{"type": "string", "minLength": 2}, {"maxLength": 4}]}
    assert _json_accepts(schema, '"abcdefg"')
    relaxed, removed = relax(schema, strict=True)
    assert removed == [] and relaxed == {"type": "string", "minLength": 2, "maxLength": 4}
    assert not _json_accepts(relaxed, '"abcdefg"') and not _json_accepts(relaxed, '"a"')
    objects = {"type": "object", "allOf": [
        {"properties": {"a": {"type": "integer", "minimum": 0}}, "required": ["a"]},
        {"properties": {"a": {"maximum": 9}, "b": {"type": "string"}}, "required": ["b"]}]}
    relaxed, _ = relax(objects, strict=True)
    assert relaxed["required"] == ["a", "b"]
    assert relaxed["properties"]["a"] == {"type": "integer", "minimum": 0, "maximum": 9}
    assert not _json_accepts(relaxed, '{"a": 1}') and _json_accepts(relaxed, '{"a": 1, "b": "x"}')


def test_an_allof_that_cannot_be_merged_is_refused_for_strict_tools() -> None:
    schema = {"allOf": [{"type": "string", "pattern": "^a"}, {"pattern": "b$"}]}
    assert relax(schema, strict=True)[1] == ["allOf with parts that cannot be merged"]
    assert relax({"allOf": [{"type": "string"}, {"type": "integer"}]}, strict=True)[1]
