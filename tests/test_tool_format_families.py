"""The model families' tool formats against their real chat templates (tests/templates): auto-detection picks
the right format for each template; a call as the template writes it into the history is what our grammar
accepts and our parser reads back; where the pinned xgrammar ships a model tag for the family, it accepts
the same text; Kimi's ids survive; DeepSeek V3.1's template gets its arguments as text and its tool list in
the system prompt."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import xgrammar as xgr
from transformers import AutoConfig, AutoTokenizer

from runtime.model import load_model_info
from runtime.templating import ChatTemplate, message_dicts
from runtime.tools.plan import plan_chat
from runtime.tools.registry import detect_format, get_format, select_format
from runtime.types import ChatRequest, Message, Tool, ToolCall, ToolChoice, ToolChoiceMode
from tests.test_tool_formats import collect
from tests.tiny_model import FAMILIES, TEMPLATES, build_tiny_model

# Every real template, and the format auto-detection must pick for it.
DETECTED = {
    "GLM-4.6.jinja": "glm45",
    "GLM-4.7-Flash.jinja": "glm47",
    "Kimi-K2-Thinking.jinja": "kimi_k2",
    "moonshotai-Kimi-K2-Thinking.jinja": "kimi_k2",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": "deepseek_v3",
    "vllm-tool_chat_template_deepseekr1.jinja": "deepseek_v3",
    "deepseek-ai-DeepSeek-V3.1.jinja": "deepseek_v31",
    "DeepSeek-V3.2.jinja": "deepseek_v32",
    "unsloth-MiniMax-M2.jinja": "minimax",
    "Qwen3.5-4B.jinja": "qwen3_coder",
    "vllm-tool_chat_template_llama3.2_pythonic.jinja": "pythonic",
}
# family -> (the format it is served with, where the template's calls start and end in a rendered prompt,
# xgrammar's model tag for the family)
CALLS = {
    "glm45": ("glm45", "<tool_call>", "</tool_call>", None),  # xgrammar's glm_4_7 admits no "\n" between calls
    "glm47": ("glm47", "<tool_call>", "</tool_call>", "glm_4_7"),
    "kimi_k2": ("kimi_k2", "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "kimi"),
    "deepseek_v3": ("deepseek_v3", "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "deepseek_r1"),
    "deepseek_v31": ("deepseek_v31", "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "deepseek_v3_1"),
    "deepseek_v32": ("deepseek_v32", "<｜DSML｜function_calls>", "</｜DSML｜function_calls>", "deepseek_v3_2"),
    "minimax": ("minimax", "<minimax:tool_call>", "</minimax:tool_call>", "minimax"),
    # xgrammar's qwen_3_5 ends a call at "\n</function>", so it refuses the template's call without parameters
    # (`<function=ping>\n</function>`); see runtime/tools/qwen3_coder.py.
    "qwen3_5": ("qwen3_coder", "<tool_call>", "</tool_call>", None),
}

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                   "filters": {"type": "object", "properties": {"lang": {"type": "string"}}},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["city"],
}
TOOLS = (Tool("get_weather", "Weather.", SCHEMA), Tool("get_time", "Time.", SCHEMA),
         Tool("ping", "No parameters.", {"type": "object", "properties": {}}))
# Kimi-form ids, so that Kimi's template writes them as they are; the others ignore ids.
CALLS_MADE = (
    ToolCall("functions.get_weather:0", "get_weather",
             {"city": 'Paris <b> "x" }] 北京\n  indented', "days": 3, "filters": {"lang": "fr"}, "tags": ["a", "b c"]}),
    ToolCall("functions.ping:1", "ping", {}),
)


def test_detects_each_real_template() -> None:
    for name, expected in DETECTED.items():
        found = detect_format((TEMPLATES / name).read_text(encoding="utf-8"))
        assert (found.name, found.known) == (expected, True), name


def test_kimi_k2_first_template_is_detected_by_its_tokens() -> None:
    """Kimi K2's first template renders no calls; its tokenizer's tokens show the family."""
    template = (TEMPLATES / "moonshotai-Kimi-K2.jinja").read_text(encoding="utf-8")
    assert not detect_format(template).known
    found = detect_format(template, FAMILIES["kimi_k2"].special)
    assert (found.name, found.known) == ("kimi_k2", True)


def test_unknown_template_falls_back_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="runtime.tools.registry"):
        assert select_format("auto", "{{ messages }}").name == "hermes"
        assert select_format("auto", (TEMPLATES / "GLM-4.6.jinja").read_text(encoding="utf-8")).name == "glm45"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no tool-call syntax known here" in warnings[0] and "--tool-format" in warnings[0]
    assert any("tool format glm45: the chat template contains" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def family_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: build_tiny_model(root / family, family=family) for family in CALLS}


def _rendered(model_dir: Path) -> str:
    """A conversation with CALLS_MADE in its history, rendered by the family's own template (no tool list, so
    that the template's instructions do not show example calls)."""
    template = ChatTemplate(load_model_info(str(model_dir)))
    history = (Message("user", "Weather?"), Message("assistant", "", tool_calls=CALLS_MADE),
               Message("tool", "sunny", tool_call_id=CALLS_MADE[0].id),
               Message("tool", "pong", tool_call_id=CALLS_MADE[1].id))
    messages = message_dicts(history)
    return template._tokenizer.decode(template.render(messages, None))


def _template_calls(family: str, model_dir: Path) -> str:
    _, start, end, _ = CALLS[family]
    text = _rendered(model_dir)
    return text[text.index(start): text.rindex(end) + len(end)]


@pytest.mark.parametrize("family", list(CALLS))
def test_parser_reads_the_calls_the_template_writes(family_models, family) -> None:
    fmt = get_format(CALLS[family][0])
    text = _template_calls(family, family_models[family])
    parser = fmt.parser(TOOLS)
    events = [*parser.feed(text), *parser.finish()]
    content, calls = collect(events)
    assert content == ""
    assert [(name, json.loads(arguments)) for name, arguments in calls] == [(c.name, c.arguments) for c in CALLS_MADE]
    if family == "kimi_k2":  # the ids the model learned (and the template wrote) come back
        assert [e.id for e in events if hasattr(e, "id")] == [c.id for c in CALLS_MADE]


def _matcher_accepts(model_dir: Path, grammar: str, text: str) -> bool:
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    config = AutoConfig.from_pretrained(str(model_dir))
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=config.vocab_size,
                                              stop_token_ids=[tokenizer.eos_token_id])
    matcher = xgr.GrammarMatcher(xgr.GrammarCompiler(info, max_threads=1).compile_structural_tag(grammar))
    ok = all(matcher.accept_token(t) for t in tokenizer.encode(text, add_special_tokens=False))
    return ok and matcher.accept_token(tokenizer.eos_token_id) and matcher.is_terminated()


@pytest.mark.parametrize("family", list(CALLS))
def test_grammar_accepts_the_calls_the_template_writes(family_models, family) -> None:
    """Our grammar for each mode that calls admits the template's own rendering of two calls; so does
    xgrammar's own model tag for the family (reasoning off), where the pinned wheel ships one."""
    fmt_name, _, _, xgrammar_model = CALLS[family]
    fmt = get_format(fmt_name)
    text = _template_calls(family, family_models[family])
    schemas = {t.name: t.parameters for t in TOOLS}
    for mode in (ToolChoiceMode.AUTO, ToolChoiceMode.REQUIRED):
        tag = fmt.structural_tag(TOOLS, schemas, ToolChoice(mode, None, True), None)
        assert _matcher_accepts(family_models[family], json.dumps(tag, ensure_ascii=False), text), mode
    if xgrammar_model is not None:
        theirs = xgr.get_model_structural_tag(
            xgrammar_model, tools=[{"type": "function", "function": {"name": t.name, "parameters": t.parameters}}
                                   for t in TOOLS], reasoning="disabled")
        # With reasoning off, xgrammar's MiniMax tag first closes the `<think>\n` its generation prompt opened
        # (and then wants two more newlines).
        closed_think = "\n</think>\n\n\n\n" if family == "minimax" else ""
        assert _matcher_accepts(family_models[family], theirs.model_dump_json(), closed_think + text)


def test_kimi_history_ids_render_as_the_model_wrote_them(family_models) -> None:
    text = _rendered(family_models["kimi_k2"])
    assert "<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>" in text
    assert "## Return of functions.get_weather:0\nsunny" in text


def test_deepseek_v31_template_gets_arguments_as_text_and_tools_in_the_system_prompt(family_models) -> None:
    """V3.1's template concatenates the arguments (`'...' + arguments`) and does not render the tool list: the
    history still renders through it (not our inline fallback), and the list goes into the system prompt."""
    template = ChatTemplate(load_model_info(str(family_models["deepseek_v31"])))
    assert (template.arguments_as_text, template.renders_tool_list, template.renders_calls) == (True, False, True)
    history = (Message("user", "Weather?"), Message("assistant", "", tool_calls=CALLS_MADE[:1]),
               Message("tool", "sunny", tool_call_id=CALLS_MADE[0].id), Message("user", "And now?"))
    request = ChatRequest(history, tools=TOOLS, tool_choice=ToolChoice(ToolChoiceMode.AUTO, None, True))
    plan = plan_chat(request, get_format("deepseek_v31"), template.renders_tools,
                     template_renders_calls=template.renders_calls)
    text = template._tokenizer.decode(template.render(plan.messages, plan.tools))
    assert "### get_weather" in text  # the tool list, in the model card's wording
    assert '<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": ' in text  # the call, by the template
    assert "<｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜>" in text  # the result, by the template


@pytest.mark.parametrize("runtime_id", ["call_0123abcd", "functions.get_weather:0", "functions.a.b:12",
                                        "functions.名前:3", "x"])
def test_anthropic_tool_use_ids_are_valid_and_come_back(runtime_id) -> None:
    import re

    from app.anthropic.ids import call_id, tool_use_id

    out = tool_use_id(runtime_id)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", out)
    if runtime_id.startswith("call_"):
        assert out == "toolu_0123abcd"
    else:
        assert call_id(out) == runtime_id
    # Ids the client made up stay as they are, even ones that look carried.
    for client_id in ("toolu_01ABC", "toolu_b64_!!", "toolu_b64_ZnVuY3Rpb25zLmdldF93ZWF0aGVyOjA=x", "anything"):
        assert call_id(client_id) == client_id


@pytest.mark.parametrize("family", list(CALLS))
def test_each_family_template_renders_the_tool_history_itself(family_models, family) -> None:
    """The probe at start: every family's template shows past calls and results (so they render through it,
    not through our inline fallback); all but DeepSeek R1's and V3.1's show the tool list too."""
    template = ChatTemplate(load_model_info(str(family_models[family])))
    assert template.renders_calls
    assert template.renders_tool_list is (family not in ("deepseek_v3", "deepseek_v31"))
    assert template.arguments_as_text is (family in ("deepseek_v3", "deepseek_v31"))


def test_pythonic_template_calls_with_literal_arguments_read_back(tmp_path) -> None:
    """vLLM's Llama 3.2 pythonic template writes a past call's values with Python's `%s` (so a string comes out
    unquoted, which no Python parser reads): its numbers, booleans and None are what the grammar and the parser
    take."""
    model_dir = build_tiny_model(tmp_path / "pythonic", family="pythonic")
    tool = Tool("add", "Adds.", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"},
                                                                  "c": {"type": ["number", "null"]}},
                                 "required": ["a"]})
    call = ToolCall("call_1", "add", {"a": 1, "b": True, "c": None})
    template = ChatTemplate(load_model_info(str(model_dir)))
    history = (Message("user", "Add?"), Message("assistant", "", tool_calls=(call,)), Message("tool", "1", tool_call_id="call_1"))
    text = template._tokenizer.decode(template.render(message_dicts(history), None))
    written = text[text.index("[add("): text.index("]<|eot_id|>") + 1]
    assert written == "[add(a=1, b=True, c=None)]"
    fmt = get_format("pythonic")
    parser = fmt.parser((tool,))
    _, calls = collect([*parser.feed(written), *parser.finish()])
    assert [(name, json.loads(arguments)) for name, arguments in calls] == [("add", call.arguments)]
    tag = fmt.structural_tag((tool,), {"add": tool.parameters}, ToolChoice(ToolChoiceMode.REQUIRED, None, True), None)
    assert _matcher_accepts(model_dir, json.dumps(tag), written)
