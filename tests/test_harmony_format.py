"""gpt-oss's harmony tool calls: the grammar over the whole message stream, and the parser behind the harmony
splitter, on every split of the text."""

from __future__ import annotations

import json

import pytest
import xgrammar as xgr

from runtime.reasoning.splitter import HarmonySplitter
from runtime.tools.harmony import HarmonyFormat
from runtime.tools.registry import detect_format
from runtime.types import TextDelta, Tool, ToolCallArgs, ToolCallStart, ToolChoice, ToolChoiceMode
from tests.test_reasoning_units import TEMPLATES

WEATHER = Tool("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}},
                                   "required": ["city"], "additionalProperties": False})
SCHEMAS = {"get_weather": WEATHER.parameters}
ANALYSIS = "<|channel|>analysis<|message|>Look it up.<|end|><|start|>assistant"
CALL = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>'
FINAL = "<|channel|>final<|message|>Sunny.<|return|>"


def accepts(choice: ToolChoice, text: str) -> bool:
    tag = HarmonyFormat().structural_tag((WEATHER,), SCHEMAS, choice, None)
    return xgr.testing._is_grammar_accept_string(xgr.Grammar.from_structural_tag(json.dumps(tag)), text)


@pytest.mark.parametrize("mode, text, ok", [
    (ToolChoiceMode.AUTO, ANALYSIS + CALL, True),
    (ToolChoiceMode.AUTO, ANALYSIS + FINAL, True),
    (ToolChoiceMode.AUTO, FINAL, True),
    (ToolChoiceMode.AUTO, CALL.replace('"Paris"', "1"), False),
    (ToolChoiceMode.REQUIRED, ANALYSIS + CALL, True),
    (ToolChoiceMode.REQUIRED, CALL, True),
    (ToolChoiceMode.REQUIRED, ANALYSIS + FINAL, False),
    (ToolChoiceMode.NONE, ANALYSIS + FINAL, True),
    (ToolChoiceMode.NONE, ANALYSIS + CALL, False),
])
def test_the_grammar_allows_thinking_then_what_tool_choice_allows(mode, text, ok):
    assert accepts(ToolChoice(mode), text) is ok


def test_the_parser_reads_calls_from_the_splitter_on_every_split():
    text = ANALYSIS + CALL.removesuffix("<|call|>")  # <|call|> ends the turn: it never reaches the text
    for cut in range(len(text) + 1):
        splitter, parser, events = HarmonySplitter(), HarmonyFormat().parser((WEATHER,)), []
        for part in (text[:cut], text[cut:]):
            for event in splitter.feed(part):
                events += list(parser.feed(event.text)) if isinstance(event, TextDelta) else [event]
        for event in splitter.finish():
            events += list(parser.feed(event.text)) if isinstance(event, TextDelta) else [event]
        events += list(parser.finish())
        starts = [e for e in events if isinstance(e, ToolCallStart)]
        assert [s.name for s in starts] == ["get_weather"] and parser.calls == 1
        assert "".join(e.fragment for e in events if isinstance(e, ToolCallArgs)) == '{"city": "Paris"}'
        assert not [e for e in events if isinstance(e, TextDelta) and e.text.strip()]


def test_gpt_oss_template_selects_harmony():
    assert detect_format((TEMPLATES / "reasoning-openai-gpt-oss-120b.jinja").read_text()).name == "harmony"


def test_a_response_format_constrains_only_the_final_channel():
    """gpt-oss without tools: a response_format's schema applies to the final message; the analysis message
    before it stays free (and may be forced closed by a budget: its end, the next message, the final header)."""
    from runtime.reasoning.formats import select_reasoning_format
    from runtime.reasoning.grammar import with_reasoning
    from runtime.reasoning.plan import ReasoningPlan
    from runtime.types import Constraint, ConstraintKind, ThinkingControl

    fmt = select_reasoning_format("gpt_oss", "")
    plan = ReasoningPlan(fmt, False, ThinkingControl((), (), ()))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    for constraint, good, bad in [
        (Constraint(ConstraintKind.JSON_SCHEMA, json.dumps(schema)), '{"city": "Paris"}', '{"town": "Paris"}'),
        (Constraint(ConstraintKind.REGEX, "[a-z]{2,5}"), "sunny", "Sunny!"),
    ]:
        grammar = xgr.Grammar.from_structural_tag(with_reasoning(constraint, plan).text)
        ok = lambda text: xgr.testing._is_grammar_accept_string(grammar, text)  # noqa: E731
        final = f"<|channel|>final<|message|>{good}<|return|>"
        assert ok(final) and ok("<|channel|>analysis<|message|>{not json at all<|end|><|start|>assistant" + final)
        assert ok(fmt.start + "x" + fmt.end + fmt.after_end + good + "<|return|>")  # what a spent budget forces
        assert not ok(final.replace(good, bad))
        assert not ok(good)  # the answer only in the final channel
        assert not ok("<|channel|>analysis<|message|>x<|end|>")  # thinking alone is no answer
