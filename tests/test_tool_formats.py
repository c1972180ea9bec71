"""The tool-call formats (FORMATS) without a server: the structural tag
each builds compiles and, driven token by token, accepts exactly the calls each tool_choice allows; each
parser turns the format's own output back into the same events however the text is split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import xgrammar as xgr
from transformers import AutoConfig, AutoTokenizer

from runtime.tools.base import ToolFormat
from runtime.tools.registry import detect_format, format_names, get_format
from runtime.types import TextDelta, Tool, ToolCall, ToolCallArgs, ToolCallStart, ToolChoice, ToolChoiceMode
from tests.tiny_model import build_tiny_model

FORMATS = ["hermes", "qwen3_coder", "llama3_json", "mistral", "mistral_v11", "glm45", "glm47", "kimi_k2", "deepseek_v3",
           "deepseek_v31", "deepseek_v32", "minimax", "pythonic"]

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
SEARCH_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "limit": {"type": "integer"},
        "exact": {"type": "boolean"},
        "ratio": {"type": "number"},
        "filters": {"type": "object", "properties": {"lang": {"type": "string"}, "min": {"type": "integer"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": ["string", "null"]},
        "zip": {"type": "string"},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
    },
    "required": ["query"],
}
TOOLS = (
    Tool("get_weather", "Weather for a city.", WEATHER_SCHEMA),
    Tool("get_time", "Time in a city (same parameters as get_weather).", WEATHER_SCHEMA),
    Tool("search", "Search code.", SEARCH_SCHEMA),
    Tool("ping", "No parameters.", {"type": "object", "properties": {}}),
)
SCHEMAS = {t.name: t.parameters for t in TOOLS}

WEATHER = ToolCall("call_1", "get_weather", {"city": "Paris", "days": 3})
TIME = ToolCall("call_2", "get_time", {"city": "Paris", "days": 3})
PING = ToolCall("call_3", "ping", {})
# Arguments that are hard for parsers: braces, quotes, tag text and newlines in strings; every JSON type;
# a string that looks like a number; a string with newlines at both ends.
SEARCH = ToolCall("call_4", "search", {
    "query": '\ndef f(x):\n    return {"a": x}  # </tool_call> }] <parameter=q> ; , \\ é 北京\n',
    "limit": 10,
    "exact": True,
    "ratio": 0.5,
    "filters": {"lang": "py", "min": -2},
    "tags": ["a", "b c"],
    "note": None,
    "zip": "02139",
    "mode": "slow",
})

TEXT_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def choice(mode: ToolChoiceMode, parallel: bool = True, name: str = "get_weather") -> ToolChoice:
    return ToolChoice(mode, name if mode is ToolChoiceMode.NAMED else None, parallel)


# -- grammar ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grammar_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, xgr.GrammarCompiler]:
    model_dir: Path = build_tiny_model(tmp_path_factory.mktemp("formats") / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    config = AutoConfig.from_pretrained(str(model_dir))
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=config.vocab_size,
                                              stop_token_ids=[tokenizer.eos_token_id])
    return tokenizer, xgr.GrammarCompiler(info, max_threads=2)


def compile_tag(env: tuple[Any, xgr.GrammarCompiler], fmt: ToolFormat, tool_choice: ToolChoice,
                text_schema: dict[str, Any] | None = None) -> xgr.CompiledGrammar:
    tag = fmt.structural_tag(TOOLS, SCHEMAS, tool_choice, text_schema)
    return env[1].compile_structural_tag(json.dumps(tag, ensure_ascii=False))


def drive(env: tuple[Any, xgr.GrammarCompiler], compiled: xgr.CompiledGrammar, text: str) -> tuple[bool, bool]:
    """Feed `text`'s tokens one by one, then EOS: (all text tokens accepted, terminated after EOS)."""
    tokenizer = env[0]
    matcher = xgr.GrammarMatcher(compiled)
    for token in tokenizer.encode(text, add_special_tokens=False):
        if not matcher.accept_token(token):
            return False, False
    return True, matcher.accept_token(tokenizer.eos_token_id) and matcher.is_terminated()


@pytest.mark.parametrize("text_schema", [None, TEXT_SCHEMA], ids=["text", "json"])
@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "single"])
@pytest.mark.parametrize("mode", list(ToolChoiceMode), ids=lambda m: m.value)
@pytest.mark.parametrize("name", FORMATS)
def test_structural_tag_compiles(grammar_env, name, mode, parallel, text_schema) -> None:
    compiled = compile_tag(grammar_env, get_format(name), choice(mode, parallel), text_schema)
    assert isinstance(compiled, xgr.CompiledGrammar)


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "single"])
@pytest.mark.parametrize("mode", [ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED], ids=lambda m: m.value)
@pytest.mark.parametrize("name", FORMATS)
def test_forced_call_is_accepted_and_terminates(grammar_env, name, mode, parallel) -> None:
    fmt = get_format(name)
    compiled = compile_tag(grammar_env, fmt, choice(mode, parallel))
    assert drive(grammar_env, compiled, fmt.render_calls((WEATHER,))) == (True, True)
    # Nothing but calls: no text first, and no end of output before a call.
    assert drive(grammar_env, compiled, "Sure. " + fmt.render_calls((WEATHER,)))[0] is False
    assert drive(grammar_env, compiled, "") == (True, False)


@pytest.mark.parametrize("name", FORMATS)
def test_required_accepts_every_type_and_no_parameters(grammar_env, name) -> None:
    fmt = get_format(name)
    compiled = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.REQUIRED, parallel=True))
    assert drive(grammar_env, compiled, fmt.render_calls((SEARCH, PING))) == (True, True)


@pytest.mark.parametrize("name", FORMATS)
def test_named_rejects_another_tool(grammar_env, name) -> None:
    fmt = get_format(name)
    compiled = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.NAMED, name="get_weather"))
    # get_time has get_weather's schema and arguments: only the name differs.
    assert drive(grammar_env, compiled, fmt.render_calls((TIME,))) == (False, False)
    assert drive(grammar_env, compiled, fmt.render_calls((WEATHER,))) == (True, True)
    # Named means once, even with parallel calls allowed.
    assert drive(grammar_env, compiled, fmt.render_calls((WEATHER, WEATHER)))[0] is False


@pytest.mark.parametrize("mode", [ToolChoiceMode.AUTO, ToolChoiceMode.REQUIRED], ids=lambda m: m.value)
@pytest.mark.parametrize("name", FORMATS)
def test_second_call_only_when_parallel(grammar_env, name, mode) -> None:
    fmt = get_format(name)
    two = fmt.render_calls((WEATHER, TIME))
    assert drive(grammar_env, compile_tag(grammar_env, fmt, choice(mode, parallel=True)), two) == (True, True)
    single = compile_tag(grammar_env, fmt, choice(mode, parallel=False))
    assert drive(grammar_env, single, two) == (False, False)
    assert drive(grammar_env, single, fmt.render_calls((TIME,))) == (True, True)


@pytest.mark.parametrize("name", FORMATS)
def test_auto_allows_text_then_calls(grammar_env, name) -> None:
    fmt = get_format(name)
    compiled = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.AUTO))
    assert drive(grammar_env, compiled, "Just text, no call.") == (True, True)
    assert drive(grammar_env, compiled, "Let me look.\n" + fmt.render_calls((SEARCH, PING))) == (True, True)
    # From the trigger on, the call is constrained: an unknown tool cannot be called.
    bad = fmt.render_calls((ToolCall("x", "get_wether", {"city": "Paris"}),))
    assert drive(grammar_env, compiled, bad)[0] is False


@pytest.mark.parametrize("name", FORMATS)
def test_none_rejects_any_call(grammar_env, name) -> None:
    fmt = get_format(name)
    compiled = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.NONE))
    assert drive(grammar_env, compiled, "Just text.") == (True, True)
    assert drive(grammar_env, compiled, fmt.render_calls((WEATHER,))) == (False, False)
    assert drive(grammar_env, compiled, "Text first. " + fmt.render_calls((PING,))) == (False, False)


@pytest.mark.parametrize("name", FORMATS)
def test_auto_with_response_format_is_json_or_calls(grammar_env, name) -> None:
    fmt = get_format(name)
    compiled = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.AUTO), TEXT_SCHEMA)
    assert drive(grammar_env, compiled, '{"answer": "42"}') == (True, True)
    assert drive(grammar_env, compiled, fmt.render_calls((WEATHER,))) == (True, True)
    assert drive(grammar_env, compiled, "free text")[0] is False


# -- parsers ----------------------------------------------------------------------------------------------


def collect(events: list[Any]) -> tuple[str, list[tuple[str, str]]]:
    """Text, and (name, joined argument fragments) per call, checking the events' order and indices."""
    text: list[str] = []
    calls: list[tuple[str, list[str]]] = []
    ids: set[str] = set()
    for e in events:
        if isinstance(e, TextDelta):
            assert e.text, "empty text event"
            text.append(e.text)
        elif isinstance(e, ToolCallStart):
            assert e.index == len(calls), "calls start in order"
            assert e.id not in ids
            ids.add(e.id)
            calls.append((e.name, []))
        else:
            assert isinstance(e, ToolCallArgs)
            assert e.index == len(calls) - 1, "arguments belong to the call that started last"
            assert e.fragment, "empty argument fragment"
            calls[-1][1].append(e.fragment)
    return "".join(text), [(n, "".join(f)) for n, f in calls]


def run_parser(fmt: ToolFormat, chunks: list[str]) -> tuple[str, list[tuple[str, str]], Any]:
    parser = fmt.parser(TOOLS)
    events: list[Any] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.finish())
    text, calls = collect(events)
    return text, calls, parser


def splits(text: str) -> list[list[str]]:
    """All at once, one character at a time, and cut in two at every character boundary."""
    return [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]


CASES = {
    "one": ("", (WEATHER,)),
    "two": ("", (WEATHER, TIME)),
    "text_then_two": ("I'll check both.\n", (SEARCH, PING)),
    "every_type": ("", (SEARCH,)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", FORMATS)
def test_parser_same_events_however_split(name, case) -> None:
    fmt = get_format(name)
    prefix, calls = CASES[case]
    output = prefix + fmt.render_calls(calls)
    for chunks in splits(output):
        text, parsed, parser = run_parser(fmt, chunks)
        where = f"chunks {[len(c) for c in chunks][:3]}"
        assert text == prefix, where
        assert [n for n, _ in parsed] == [c.name for c in calls], where
        for (_, arguments), call in zip(parsed, calls):
            assert json.loads(arguments) == call.arguments, where
        assert parser.calls == len(calls)
        assert not parser.in_call


@pytest.mark.parametrize("name", FORMATS)
def test_parser_plain_text_passes_through(name) -> None:
    fmt = get_format(name)
    output = "No calls here: just <tool text>, [brackets] and {braces}; fine."
    for chunks in splits(output):
        text, parsed, parser = run_parser(fmt, chunks)
        assert (text, parsed, parser.calls) == (output, [], 0)


@pytest.mark.parametrize("name", FORMATS)
def test_parser_streams_arguments_before_the_call_ends(name) -> None:
    fmt = get_format(name)
    output = fmt.render_calls((SEARCH,))
    cut = output.index("return")  # inside the first (string) argument
    parser = fmt.parser(TOOLS)
    text, parsed = collect(list(parser.feed(output[:cut])))
    assert parsed and parsed[0][0] == "search"
    assert "def f(x)" in parsed[0][1]
    assert parser.in_call and parser.calls == 0


@pytest.mark.parametrize("name", FORMATS)
def test_unfinished_call_stays_unfinished(name) -> None:
    fmt = get_format(name)
    output = fmt.render_calls((WEATHER,))
    cut = output.index("Paris") + 2
    text, parsed, parser = run_parser(fmt, [output[:cut]])
    assert text == ""
    assert [n for n, _ in parsed] == ["get_weather"]
    assert parser.calls == 0 and parser.in_call


@pytest.mark.parametrize("name", FORMATS)
def test_a_trigger_cut_off_by_max_tokens_is_not_text(name) -> None:
    """max_tokens ending the output inside a call's opening syntax: the held-back start of the trigger is
    dropped, never returned as text (only the text before it is)."""
    fmt = get_format(name)
    prefix = "Sure. "
    output = fmt.render_calls((WEATHER,))
    for cut in range(1, len(output)):
        parser = fmt.parser(TOOLS)
        text, _ = collect([*parser.feed(prefix + output[:cut]), *parser.finish(cut_off=True)])
        assert text == prefix, f"cut after {output[:cut]!r}"


@pytest.mark.parametrize("mode", [ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED], ids=lambda m: m.value)
@pytest.mark.parametrize("name", FORMATS)
def test_a_forced_call_is_never_text_however_cut(name, mode) -> None:
    """tool_choice required / named: the whole output is call syntax, so no cut of it is text, whatever
    the reason the output ended."""
    from runtime.tools.plan import plan_chat
    from runtime.types import ChatRequest, Message

    fmt = get_format(name)
    request = ChatRequest((Message("user", "hi"),), tools=TOOLS, tool_choice=choice(mode))
    output = fmt.render_calls((WEATHER, TIME) if mode is ToolChoiceMode.REQUIRED else (WEATHER,))
    for cut in range(1, len(output) + 1):
        for cut_off in (True, False):
            parser = plan_chat(request, fmt, True).parser
            text, _ = collect([*parser.feed(output[:cut]), *parser.finish(cut_off)])
            assert text == "", f"cut after {output[:cut]!r}"


@pytest.mark.parametrize("name", FORMATS)
def test_parser_text_after_a_call_keeps_its_whitespace(name) -> None:
    fmt = get_format(name)
    after = "\n\nDone: it is  sunny."
    for chunks in splits(fmt.render_calls((WEATHER,)) + after):
        text, parsed, parser = run_parser(fmt, chunks)
        assert text == after, f"chunks {[len(c) for c in chunks][:3]}"
        assert [n for n, _ in parsed] == ["get_weather"] and parser.calls == 1


def test_qwen3_coder_values_typed_by_schema() -> None:
    fmt = get_format("qwen3_coder")
    output = (
        "<tool_call>\n<function=search>\n"
        "<parameter=query>\n  spaced  \n</parameter>\n"
        "<parameter=limit>\n7\n</parameter>\n"
        "<parameter=exact> false </parameter>\n"
        "<parameter=filters>\n{\"lang\": \"go\"}\n</parameter>\n"
        "<parameter=note>\nnull\n</parameter>\n"
        "<parameter=zip>\n00123\n</parameter>\n"
        "<parameter=mode> fast\n</parameter>\n"
        "<parameter=unknown>\n[1, 2]\n</parameter>\n"
        "<parameter=other>\n5\n</parameter>\n"
        "</function>\n</tool_call>"
    )
    for chunks in splits(output):
        _, parsed, _ = run_parser(fmt, chunks)
        assert json.loads(parsed[0][1]) == {
            "query": "  spaced  ", "limit": 7, "exact": False, "filters": {"lang": "go"}, "note": None,
            "zip": "00123", "mode": "fast", "unknown": [1, 2], "other": "5",
        }


@pytest.mark.parametrize("name", FORMATS)
def test_parser_escapes_raw_control_characters(name) -> None:
    """Should a grammar let a raw control character into a JSON string, the arguments stay strict JSON."""
    fmt = get_format(name)
    output = fmt.render_calls((ToolCall("x", "search", {"query": "q", "filters": {"lang": "PLACEHOLDER"}}),))
    output = output.replace("PLACEHOLDER", "a\tb\x01")
    for chunks in splits(output):
        _, parsed, _ = run_parser(fmt, chunks)
        assert json.loads(parsed[0][1]) == {"query": "q", "filters": {"lang": "a\tb\x01"}}


def test_mistral_accepts_the_spaced_opener(grammar_env) -> None:
    fmt = get_format("mistral")
    output = 'Checking. [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    for chunks in splits(output):
        text, parsed, _ = run_parser(fmt, chunks)
        assert (text, parsed) == ("Checking. ", [("get_weather", '{"city": "Paris"}')])
    compiled = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.AUTO))
    assert drive(grammar_env, compiled, output) == (True, True)


def test_llama_python_tag_opens_a_call(grammar_env) -> None:
    fmt = get_format("llama3_json")
    output = '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}'
    for chunks in splits(output):
        text, parsed, _ = run_parser(fmt, chunks)
        assert (text, parsed) == ("", [("get_weather", '{"city": "Paris"}')])
    compiled = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.AUTO))
    assert drive(grammar_env, compiled, output) == (True, True)
    # After the python tag only a call may follow.
    assert drive(grammar_env, compiled, "<|python_tag|>print(1)")[0] is False


def test_llama_text_after_a_call_is_text() -> None:
    fmt = get_format("llama3_json")
    output = fmt.render_calls((WEATHER,)) + "; then I will summarise."
    for chunks in splits(output):
        text, parsed, parser = run_parser(fmt, chunks)
        assert text == "; then I will summarise."
        assert [n for n, _ in parsed] == ["get_weather"] and parser.calls == 1


# -- registry ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template, expected", [
    ("{{ '<tool_call>\\n<function=' + name + '>\\n<parameter=' }}", "qwen3_coder"),
    ("{{ '[AVAILABLE_TOOLS]' }}{{ '[TOOL_CALLS] [' }}", "mistral"),
    ("{{- '[TOOL_CALLS]' + tool['function']['name'] + '[ARGS]' + arguments }}", "mistral_v11"),
    ("{%- if builtin_tools %}{{ '<|python_tag|>' }}{% endif %}", "llama3_json"),
    ("{{ '<tool_call>\\n' }}", "hermes"),
    ("{{ messages }}", "hermes"),
    (None, "hermes"),
])
def test_detect_format(template, expected) -> None:
    assert detect_format(template).name == expected


def test_every_format_is_registered() -> None:
    assert set(FORMATS) <= set(format_names())
    for name in FORMATS:
        assert get_format(name).name == name
    with pytest.raises(ValueError):
        get_format("pythonish")


def test_qwen3_coder_never_emits_non_json_numbers() -> None:
    fmt = get_format("qwen3_coder")
    tool = Tool("f", "", {"type": "object", "properties": {"x": {"type": ["number", "string"]},
                                                           "y": {"type": ["number", "string"]}}})
    output = ("<tool_call>\n<function=f>\n<parameter=x>\nNaN\n</parameter>\n"
              "<parameter=y>\n1e999\n</parameter>\n</function>\n</tool_call>")
    parser = fmt.parser((tool,))
    args = "".join(e.fragment for e in [*parser.feed(output), *parser.finish()] if isinstance(e, ToolCallArgs))
    assert json.loads(args, parse_constant=lambda c: pytest.fail(f"{c} in {args}")) == {"x": "NaN", "y": "1e999"}


BOUNDED = Tool("bounded", "Strings with bounds.", {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^[a-z]{3}$"},
                   "short": {"type": "string", "minLength": 2, "maxLength": 3}},
    "required": ["code", "short"],
})


@pytest.mark.parametrize(("code", "short", "expected"), [
    ("\nabc\n", "\nxy\n", {"code": "abc", "short": "xy"}),  # as Qwen's template writes values
    (" abc\t", " xy", {"code": "abc", "short": "xy"}),
    ("abc", " a", {"code": "abc", "short": " a"}),  # " a" is the only reading that meets minLength 2
    ("abc\n", "\t\txy", {"code": "abc", "short": "\txy"}),  # one whitespace character is the grammar's
])
def test_qwen3_coder_bounded_strings_lose_only_the_grammars_whitespace(grammar_env, code, short, expected) -> None:
    """xgrammar writes a string with bounds (pattern, format, lengths) as `ws? value ws?`: the parser takes
    the reading that meets the bounds, so a returned value validates."""
    import jsonschema

    fmt = get_format("qwen3_coder")
    output = (f"<tool_call>\n<function=bounded>\n<parameter=code>{code}</parameter>\n"
              f"<parameter=short>{short}</parameter>\n</function>\n</tool_call>")
    tag = fmt.structural_tag((BOUNDED,), {"bounded": BOUNDED.parameters}, choice(ToolChoiceMode.REQUIRED), None)
    compiled = grammar_env[1].compile_structural_tag(json.dumps(tag))
    assert drive(grammar_env, compiled, output) == (True, True)
    for chunks in splits(output):
        parser = fmt.parser((BOUNDED,))
        events = [e for chunk in chunks for e in parser.feed(chunk)] + list(parser.finish())
        _, calls = collect(events)
        assert [json.loads(arguments) for _, arguments in calls] == [expected]
        jsonschema.validate(expected, BOUNDED.parameters)


def test_qwen3_coder_parser_reads_the_relaxed_schema_the_grammar_enforces() -> None:
    """A non-strict tool's string bound above 32 is relaxed away for the grammar (free text there), so the
    parser streams the value as free text and keeps its leading whitespace (indentation matters in code)."""
    from runtime.tools.plan import plan_chat
    from runtime.types import ChatRequest, Message

    tool = Tool("edit", "", {"type": "object", "properties": {"code": {"type": "string", "maxLength": 200}},
                             "required": ["code"]})
    request = ChatRequest((Message("user", "hi"),), tools=(tool,), tool_choice=choice(ToolChoiceMode.REQUIRED))
    plan = plan_chat(request, get_format("qwen3_coder"), True)
    output = "<tool_call>\n<function=edit>\n<parameter=code>  indented\n</parameter>\n</function>\n</tool_call>"
    events = list(plan.parser.feed(output)) + list(plan.parser.finish())
    _, calls = collect(events)
    assert [json.loads(arguments) for _, arguments in calls] == [{"code": "  indented"}]


CONST_TOOL = Tool("setup", "Consts and enums.", {
    "type": "object",
    "properties": {"flags": {"const": {"dry_run": True, "skip": None}}, "level": {"enum": ["low", 2, False]},
                   "word": {"type": "string", "pattern": "true"}},  # a pattern that reads as a JSON literal
    "required": ["flags"],
})


def test_pythonic_grammar_holds_python_literals(grammar_env) -> None:
    """Arguments are Python literals under the tool's schema: `True`/`False`/`None`, never JSON's words; required
    keywords present; no `\\/` escape (Python reads it as two characters); const and enum values written the
    Python way too. With tool_choice none, brackets are text; only a call's start is excluded."""
    fmt = get_format("pythonic")
    compiled = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.REQUIRED))
    assert drive(grammar_env, compiled, '[search(query="q", exact=True, note=None)]') == (True, True)
    assert drive(grammar_env, compiled, '[search(query="q", exact=true)]')[0] is False
    assert drive(grammar_env, compiled, '[search(query="q", note=null)]')[0] is False
    assert drive(grammar_env, compiled, "[get_weather(days=3)]")[0] is False  # city is required
    assert drive(grammar_env, compiled, '[search(query="a\\/b")]')[0] is False
    assert drive(grammar_env, compiled, '[search(query="a\\\\b\\n\\u00e9")]') == (True, True)
    tag = fmt.structural_tag((CONST_TOOL,), {"setup": CONST_TOOL.parameters}, choice(ToolChoiceMode.REQUIRED), None)
    consts = grammar_env[1].compile_structural_tag(json.dumps(tag))
    assert drive(grammar_env, consts, '[setup(flags={"dry_run": True, "skip": None}, level=False)]') == (True, True)
    assert drive(grammar_env, consts, '[setup(flags={"dry_run": True, "skip": None}, word="true")]') == (True, True)
    assert drive(grammar_env, consts, '[setup(flags={"dry_run": true, "skip": null})]')[0] is False
    none = compile_tag(grammar_env, fmt, choice(ToolChoiceMode.NONE))
    assert drive(grammar_env, none, "See [1] and [get the point].") == (True, True)
    assert drive(grammar_env, none, '[get_weather(city="Paris")]')[0] is False


def test_pythonic_parser_writes_json_literals() -> None:
    fmt = get_format("pythonic")
    output = '[setup(flags={"dry_run": True, "skip": None, "note": "True, None)"}, level=False)]'
    for chunks in splits(output):
        parser = fmt.parser((CONST_TOOL,))
        events = [e for chunk in chunks for e in parser.feed(chunk)] + list(parser.finish())
        _, calls = collect(events)
        assert [json.loads(arguments) for _, arguments in calls] == [
            {"flags": {"dry_run": True, "skip": None, "note": "True, None)"}, "level": False}]
