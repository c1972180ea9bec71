"""Pure tests of the reasoning core: the splitter on every split of a text, the budget tracker, the formats'
detection and template switches, the grammar's free region."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.reasoning.budget import ThinkingBudgetProcessor, ThinkingTracker, control_params
from runtime.reasoning.formats import detect_reasoning_format, select_reasoning_format
from runtime.reasoning.grammar import with_reasoning
from runtime.reasoning.markers import marker_spelling, spelling_of, spells_part, vocabulary_bytes
from runtime.reasoning.plan import ReasoningPlan
from runtime.reasoning.splitter import HarmonySplitter, ThinkSplitter
from runtime.types import Constraint, ConstraintKind, ReasoningDelta, ReasoningOptions, TextDelta, ThinkingControl

TEMPLATES = Path(__file__).parent / "templates"


def split_every_way(factory, text: str) -> set[tuple[str, str]]:
    """(reasoning, answer) for every split of `text` into three deltas."""
    results = set()
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            splitter, events = factory(), []
            for part in (text[:i], text[i:j], text[j:]):
                events += splitter.feed(part)
            events += splitter.finish()
            reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
            answer = "".join(e.text for e in events if isinstance(e, TextDelta))
            results.add((reasoning, answer))
    return results


@pytest.mark.parametrize("text, inside, expected", [
    ("<think>\nhmm, ok\n</think>\n\nHello <b>", False, ("hmm, ok", "Hello <b>")),
    ("hmm\n</think>\n\nHi", True, ("hmm", "Hi")),
    ("\n<think>a</think>b", False, ("a", "b")),  # GLM writes a newline first
    ("Hello <think> x", False, ("", "Hello <think> x")),  # opens only at the start
    ("<thi", False, ("", "<thi")),  # an unfinished marker at the end is the model's text
    ("abc </thi", True, ("abc </thi", "")),  # cut off while thinking
    ("<think>never closed", False, ("never closed", "")),
    ("</think>x", True, ("", "x")),
])
def test_think_splitter_gives_the_same_split_for_every_delta_boundary(text, inside, expected):
    assert split_every_way(lambda: ThinkSplitter("<think>", "</think>", inside=inside), text) == {expected}


@pytest.mark.parametrize("text, expected", [
    ("<|channel|>analysis<|message|>think a<|end|><|start|>assistant<|channel|>final<|message|>Answer!",
     ("think a", "Answer!")),
    ("<|channel|>analysis<|message|>a\n<|end|><|start|>assistant<|channel|>analysis<|message|>b<|end|>"
     "<|start|>assistant<|channel|>final<|message|>c<|return|>", ("a\nb", "c")),
    ("plain text", ("", "plain text")),
    ("<|channel|>analysis<|message|>cut", ("cut", "")),
])
def test_harmony_splitter_gives_the_same_split_for_every_delta_boundary(text, expected):
    assert split_every_way(HarmonySplitter, text) == {expected}


@pytest.mark.parametrize("call", [
    "<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}<|call|>",
    "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>{}<|call|>",
    "<|start|>assistant<|channel|>commentary to=functions.f<|message|>{}",
])
def test_harmony_tool_calls_pass_to_the_answer_side_in_one_header_form(call):
    expected = ("a", "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}")
    assert split_every_way(HarmonySplitter, "<|channel|>analysis<|message|>a<|end|>" + call) == {expected}


# -- the budget tracker: 1 = <think>, 2 = </think>, 9 = whitespace, 5-8 other text (outside the table); ----
# the markers spelled in pieces: 20 = "<", 21 = "think", 22 = ">", 23 = "</", 24 = "think>", 25 = "a</thi",
# 26 = "nk>b" (a token that begins the end marker after reasoning text, one that ends it before the answer).

SPELLINGS = {1: b"<think>", 2: b"</think>", 9: b" ", 20: b"<", 21: b"think", 22: b">", 23: b"</", 24: b"think>",
             25: b"a</thi", 26: b"nk>b"}
THINK_MARKERS = spelling_of(b"<think>", b"</think>", SPELLINGS)


def control(**kw) -> ThinkingControl:
    return ThinkingControl((1,), (2,), THINK_MARKERS, **kw)


def run(control: ThinkingControl, proposals: list[int]) -> tuple[list[int], ThinkingTracker]:
    """Each step the model proposes a token; the tracker may force another."""
    tracker, out = ThinkingTracker(control), []
    for proposed in proposals:
        token = tracker.forced() or proposed
        tracker.push(token)
        out.append(token)
    return out, tracker


def test_the_budget_forces_the_end_marker_after_exactly_budget_tokens():
    out, tracker = run(control(budget=3), [1, 5, 6, 7, 8, 8, 8])
    assert out == [1, 5, 6, 7, 2, 8, 8] and tracker.used == 3


def test_a_region_opened_in_the_prompt_counts_from_the_first_token():
    out, tracker = run(control(budget=2, starts_inside=True), [5, 6, 7, 8])
    assert out == [5, 6, 2, 8] and tracker.used == 2


def test_budget_zero_closes_the_region_at_once_and_force_open_opens_it():
    out, tracker = run(control(budget=0, force_open=True), [5, 6, 7])
    assert out == [1, 2, 7] and tracker.used == 0


def test_the_region_opens_only_at_the_start_after_whitespace():
    assert run(control(budget=1), [9, 1, 5, 6, 7])[0] == [9, 1, 5, 2, 7]
    out, tracker = run(control(budget=1), [5, 1, 6, 7])
    assert out == [5, 1, 6, 7] and tracker.used == 0


def test_the_model_closing_its_own_region_is_counted_without_the_marker():
    out, tracker = run(control(), [1, 5, 6, 2, 7])
    assert tracker.used == 2 and not tracker.inside


def test_a_start_marker_spelled_in_pieces_opens_the_region_and_the_budget_applies():
    # "<" "think" ">" is <think> to the reader, though not its token: the budget counts from there.
    out, tracker = run(control(budget=2), [9, 20, 21, 22, 5, 6, 7, 8])
    assert out == [9, 20, 21, 22, 5, 6, 2, 8] and tracker.used == 2 and not tracker.inside
    # One piece away from the marker ("<" "think" "think>") is text: no region.
    out, tracker = run(control(budget=1), [20, 21, 24, 5, 6])
    assert out == [20, 21, 24, 5, 6] and tracker.used == 0


def test_an_end_marker_spelled_in_pieces_closes_the_region_without_counting_its_tokens():
    out, tracker = run(control(budget=5), [1, 5, 6, 23, 24, 7, 8])
    assert out == [1, 5, 6, 23, 24, 7, 8] and tracker.used == 2 and not tracker.inside
    # Pieces that also hold the region's text count as reasoning: "a</thi" holds "a"; "nk>b" none of it.
    out, tracker = run(control(budget=5), [1, 5, 25, 26, 7, 8])
    assert out == [1, 5, 25, 26, 7, 8] and tracker.used == 2 and not tracker.inside
    # Pieces of a marker that never comes are reasoning, and the budget forces the canonical end after them.
    out, tracker = run(control(budget=3), [1, 5, 23, 21, 7, 8])
    assert out == [1, 5, 23, 21, 2, 8] and tracker.used == 3


def test_a_token_that_opens_the_region_and_goes_on_counts_as_reasoning():
    markers = spelling_of(b"<think>", b"</think>", SPELLINGS | {27: b"think>ok", 28: b"<think></think>"})
    out, tracker = run(ThinkingControl((1,), (2,), markers, budget=2), [20, 27, 5, 6, 7])
    assert out == [20, 27, 5, 2, 7] and tracker.used == 2
    out, tracker = run(ThinkingControl((1,), (2,), markers, budget=2), [28, 5, 6])
    assert out == [28, 5, 6] and tracker.used == 0 and not tracker.inside


def test_multi_token_markers_and_a_forced_continuation():
    # harmony-like: start (1, 3), end (2,), forced (2, 4, 4)
    markers = spelling_of(b"<|channel|>analysis<|message|>", b"<|end|>",
                          {1: b"<|channel|>", 3: b"analysis<|message|>", 2: b"<|end|>", 4: b"<|start|>"})
    c = ThinkingControl((1, 3), (2, 4, 4), markers, budget=2)
    out, tracker = run(c, [1, 3, 5, 6, 7, 8, 8])
    assert out == [1, 3, 5, 6, 2, 4, 4] and tracker.used == 2


def test_the_tiny_harmony_models_spelling_of_its_markers_in_text_tokens(tmp_path):
    """The family's tiny model spells `<|channel|>analysis<|message|>` and `<|end|>` in ordinary tokens where
    its grammar admits text: the table from its real vocabulary lets the tracker see both."""
    from tests.tiny_model import build_tiny_model
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(build_tiny_model(tmp_path / "harmony", family="harmony")))
    markers = marker_spelling("<|channel|>analysis<|message|>", "<|end|>", vocabulary_bytes(tokenizer))
    assert len(markers.token_bytes) < len(tokenizer) // 4  # only the tokens that matter travel to SGLang

    def plain(text: str) -> list[int]:  # the text in ordinary tokens, special ones spelled out character by character
        return [i for c in text for i in tokenizer.encode(c, add_special_tokens=False)]

    start = tuple(tokenizer.encode("<|channel|>analysis<|message|>", add_special_tokens=False))
    end = (tokenizer.convert_tokens_to_ids("<|end|>"),)
    opened, words = plain("<|channel|>analysis<|message|>"), tokenizer.encode(" one two three four five six")
    assert not set(opened) & {*start, *end} and len(words) > 4
    out, tracker = run(ThinkingControl(start, end, markers, budget=3), opened + words)
    assert out == opened + words[:3] + [end[0]] + words[4:] and tracker.used == 3
    closed = opened + words[:2] + plain("<|end|>") + words[2:]
    tracker = ThinkingTracker.replay(ThinkingControl(tuple(start), tuple(end), markers), closed)
    assert not tracker.inside and tracker.used == 2


@pytest.mark.parametrize("token, part", [(b"<|end|>", True), (b"<|", True), (b" <|e", True), (b"nd|>", True),
                                         (b"|> ok", True), (b"en", True), (b"x<|end|>y", True), (b"end", True),
                                         (b"ending", False), (b"<x", False), (b" ", False), (b">>", True), (b"x>", False)])
def test_which_tokens_can_spell_part_of_a_marker(token, part):
    assert spells_part(token, b"<|end|>") is part


@pytest.mark.parametrize("proposals", [[1, 5, 6, 7, 8], [20, 21, 22, 5, 6, 7, 8]])
def test_the_sglang_processor_forces_the_same_tokens_as_the_tracker(proposals):
    import torch

    class Req:  # what SGLang's processor sees of a request (schedule_batch.py Req)
        def __init__(self, ids):
            self.output_ids = ids

    c = control(budget=2)
    # What crosses SGLang's IPC: JSON (msgpack) values only, the marker table included.
    params = json.loads(json.dumps(control_params(c)))
    processor = ThinkingBudgetProcessor()
    out: list[int] = []
    for proposed in proposals:
        logits = torch.zeros(1, 30)
        logits[0, proposed] = 5.0
        logits = ThinkingBudgetProcessor()(logits, [{"thinking": params, "__req__": Req(list(out))}])
        out.append(int(logits[0].argmax()))
    assert out == run(c, proposals)[0] and out[-2] == 2
    assert json.loads(ThinkingBudgetProcessor.to_str())["callable"]
    assert processor._spellings[THINK_MARKERS.key] == THINK_MARKERS  # decoded once, shared by every instance


# -- formats -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template, expected", [
    ("reasoning-Qwen-Qwen3-0.6B.jinja", "qwen3"),
    ("reasoning-Qwen3.5-4B.jinja", "qwen3"),
    ("reasoning-GLM-4.6.jinja", "qwen3"),
    ("reasoning-deepseek-ai-DeepSeek-V3.1.jinja", "deepseek_v3"),
    ("reasoning-deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "deepseek_r1"),
    ("reasoning-unsloth-MiniMax-M2.jinja", "deepseek_r1"),
    ("reasoning-openai-gpt-oss-120b.jinja", "gpt_oss"),
])
def test_the_format_is_detected_from_each_real_template(template, expected):
    assert detect_reasoning_format((TEMPLATES / template).read_text()) == expected


def test_a_template_without_thinking_gets_none():
    from tests.tiny_model import CHAT_TEMPLATE

    assert detect_reasoning_format(CHAT_TEMPLATE) == "none"
    assert select_reasoning_format("auto", CHAT_TEMPLATE) is None
    assert select_reasoning_format("none", "<think>") is None


def test_template_switches_follow_the_request():
    qwen = select_reasoning_format("qwen3", "")
    assert qwen.template_kwargs(ReasoningOptions(enabled=False)) == {"enable_thinking": False}
    assert qwen.template_kwargs(ReasoningOptions()) == {}
    oss = select_reasoning_format("gpt_oss", "")
    assert oss.template_kwargs(ReasoningOptions(effort="high")) == {"reasoning_effort": "high"}
    for effort in ("xhigh", "max"):  # OpenAI's and Anthropic's efforts above the template's three
        assert oss.template_kwargs(ReasoningOptions(enabled=True, effort=effort)) == {"reasoning_effort": "high"}
    assert select_reasoning_format("deepseek_v3", "").template_kwargs(ReasoningOptions(enabled=True)) == {
        "thinking": True}


def test_the_grammar_puts_a_free_region_before_the_constraint():
    fmt = select_reasoning_format("qwen3", "")
    tag = {"type": "structural_tag", "format": {"type": "const_string", "value": "x"}}
    constraint = Constraint(ConstraintKind.STRUCTURAL_TAG, json.dumps(tag))
    inside = ReasoningPlan(fmt, True, control())
    wrapped = json.loads(with_reasoning(constraint, inside).text)["format"]
    assert wrapped["elements"][0] == {"type": "tag", "begin": "", "content": {"type": "any_text"}, "end": "</think>"}
    assert wrapped["elements"][-1] == tag["format"]
    optional = json.loads(with_reasoning(constraint, ReasoningPlan(fmt, False, control())).text)["format"]
    assert optional["elements"][0]["type"] == "optional"
    schema = Constraint(ConstraintKind.JSON_SCHEMA, json.dumps({"type": "object"}))
    assert json.loads(with_reasoning(schema, inside).text)["format"]["elements"][-1]["type"] == "json_schema"
    assert with_reasoning(None, inside) is None
    regex = Constraint(ConstraintKind.REGEX, "(yes|no)")
    assert json.loads(with_reasoning(regex, inside).text)["format"]["elements"][-1] == {"type": "regex",
                                                                                       "pattern": "(yes|no)"}
    ebnf = Constraint(ConstraintKind.EBNF, 'root ::= "a"')
    assert json.loads(with_reasoning(ebnf, inside).text)["format"]["elements"][-1]["type"] == "grammar"


def test_the_wrapped_grammar_compiles_and_accepts_thinking_then_the_answer():
    import xgrammar as xgr

    fmt = select_reasoning_format("qwen3", "")
    schema = Constraint(ConstraintKind.JSON_SCHEMA, json.dumps({"type": "object", "properties": {
        "a": {"type": "integer"}}, "required": ["a"]}))
    for inside, text in ((True, 'free <b> text</think>\n\n{"a": 1}'), (False, '<think>x</think>{"a": 1}'),
                         (False, '{"a": 1}')):
        wrapped = with_reasoning(schema, ReasoningPlan(fmt, inside, control()))
        grammar = xgr.Grammar.from_structural_tag(wrapped.text)
        assert xgr.testing._is_grammar_accept_string(grammar, text), (inside, text)
        assert not xgr.testing._is_grammar_accept_string(grammar, text.replace('"a": 1', '"a": "x"'))
