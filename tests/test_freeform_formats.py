"""A freeform (`custom`) tool's grammar is enforced in every tool format: the JSON formats carry its input as
an escaped JSON string, the XML-ish ones (Qwen3-Coder, GLM, MiniMax, DSML) raw between the parameter's tags.
In each, the call whose input follows the grammar is accepted and read back by the format's parser as that
input; a call whose input does not is rejected."""

from __future__ import annotations

import json
from typing import Any

import pytest
import xgrammar
from xgrammar.testing import _is_grammar_accept_string as accepts

from runtime.tools.base import ToolFormat
from runtime.tools.freeform import FREEFORM_KEY, INPUT, freeform_parameters
from runtime.tools.harmony import CALL_END, call_header
from runtime.tools.registry import format_names, get_format
from runtime.types import TextDelta, Tool, ToolCall, ToolCallArgs, ToolCallStart, ToolChoice, ToolChoiceMode

FORMATS = [name for name in format_names() if name != "auto"]
# Codex's apply_patch, in small: a header line, then lines that each add, remove or keep text.
PATCH = xgrammar.Grammar.from_lark(
    'start: "*** Begin Patch\\n" line+ "*** End Patch"\n'
    'line: /[+\\- ][^\\n]*/ "\\n"')
EBNF = str(PATCH)
TOOL = Tool("apply_patch", "Apply a patch.", freeform_parameters(), True, freeform_grammar=EBNF)
SCHEMAS = {TOOL.name: {**TOOL.parameters, FREEFORM_KEY: EBNF}}
GOOD = '*** Begin Patch\n+print("a \\\\ b")\n- <tag>\t</parameter\n  kept\n*** End Patch'
BAD = ["*** Begin Patch\n*** End Patch", '*** Begin Patch\nprint("x")\n*** End Patch', "rm -rf /"]


def call_text(fmt: ToolFormat, text: str) -> str:
    """The call as the model writes it (harmony's starts at its header: the reasoning splitter hands the
    parser each call message that way)."""
    rendered = fmt.render_calls((ToolCall("call_1", TOOL.name, {INPUT: text}),))
    if fmt.name == "harmony":
        return call_header(f"functions.{TOOL.name}") + json.dumps({INPUT: text}, ensure_ascii=False) + CALL_END
    return rendered


def grammar(fmt: ToolFormat, mode: ToolChoiceMode) -> str:
    choice = ToolChoice(mode, TOOL.name if mode is ToolChoiceMode.NAMED else None, True)
    tag = fmt.structural_tag((TOOL,), SCHEMAS, choice, None)
    return str(xgrammar.Grammar.from_structural_tag(json.dumps(tag, ensure_ascii=False)))


def parsed(fmt: ToolFormat, text: str) -> tuple[str, list[dict[str, Any]]]:
    parser = fmt.parser((TOOL,))
    events = [*parser.feed(text), *parser.finish()]
    plain = "".join(e.text for e in events if isinstance(e, TextDelta))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    args = "".join(e.fragment for e in events if isinstance(e, ToolCallArgs))
    assert [s.name for s in starts] == [TOOL.name]
    return plain, [json.loads(args)]


@pytest.mark.parametrize("mode", [ToolChoiceMode.NAMED, ToolChoiceMode.AUTO], ids=lambda m: m.value)
@pytest.mark.parametrize("name", FORMATS)
def test_the_input_follows_the_grammar_in_every_format(name: str, mode: ToolChoiceMode) -> None:
    fmt = get_format(name)
    ebnf = grammar(fmt, mode)
    prefix = "<|channel|>analysis<|message|>x<|end|><|start|>assistant" if name == "harmony" else ""
    assert accepts(ebnf, prefix + call_text(fmt, GOOD)), name
    for text in BAD:
        assert not accepts(ebnf, prefix + call_text(fmt, text)), (name, text)


@pytest.mark.parametrize("name", FORMATS)
def test_the_parser_reads_back_the_input(name: str) -> None:
    fmt = get_format(name)
    text = call_text(fmt, GOOD).removesuffix(CALL_END)  # (harmony's <|call|> stops generation: never parsed)
    plain, calls = parsed(fmt, text)
    assert calls == [{INPUT: GOOD}]
    assert plain.strip() == ""


@pytest.mark.parametrize("name", ["qwen3_coder", "glm45", "glm47", "minimax", "deepseek_v32"])
def test_xml_formats_write_the_input_raw(name: str) -> None:
    """The XML-ish formats' values are not JSON: the grammar must match the raw text, not its escaped form."""
    fmt = get_format(name)
    ebnf = grammar(fmt, ToolChoiceMode.NAMED)
    escaped = json.dumps(GOOD, ensure_ascii=False)[1:-1]
    rendered = call_text(fmt, GOOD)
    assert GOOD in rendered
    assert not accepts(ebnf, rendered.replace(GOOD, escaped))


@pytest.mark.parametrize("name", ["qwen3_coder", "glm45", "glm47", "minimax", "deepseek_v32"])
def test_an_input_may_hold_the_value_end_tag(name: str) -> None:
    """The grammar lets the input contain the parameter's end tag (a patch to an XML file may), so the parser
    ends the input only where the grammar does: at the end tag followed by the call's end."""
    fmt = get_format(name)
    close = fmt.syntax.value_close
    text = f"*** Begin Patch\n+<x>{close}</x>\n+{close}\n*** End Patch"
    assert accepts(grammar(fmt, ToolChoiceMode.NAMED), call_text(fmt, text))
    rendered = call_text(fmt, text)
    for cut in range(len(rendered) + 1):  # however the text arrives
        parser = fmt.parser((TOOL,))
        events = [*parser.feed(rendered[:cut]), *parser.feed(rendered[cut:]), *parser.finish()]
        args = "".join(e.fragment for e in events if isinstance(e, ToolCallArgs))
        assert json.loads(args) == {INPUT: text}, cut
