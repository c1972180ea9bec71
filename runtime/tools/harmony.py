"""gpt-oss tool calls in OpenAI's harmony format: a message on the commentary channel addressed to the tool,
`<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>`.

<|call|> is an end-of-turn token (gpt-oss's generation config stops on it), so a response holds at most one call,
and the marker never reaches the text: the parser's calls end with their JSON. The harmony reasoning splitter
(runtime/reasoning/splitter.py) hands each call message to the answer side with its header written in the one
form below (the model may also put the recipient before the channel), so this parser reads one syntax.

The grammar is the whole message stream, as xgrammar's own harmony preset builds it
(builtin_structural_tag.py `get_harmony_structural_tag`): an optional analysis message, then the final message
or calls, as tool_choice allows.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.grammar import json_content, structural_tag
from runtime.tools.json_calls import JsonCallParser
from runtime.types import Tool, ToolCall, ToolChoice, ToolChoiceMode

TRIGGER = "<|channel|>commentary to=functions."
ANALYSIS = "<|channel|>analysis<|message|>"
FINAL = "<|channel|>final<|message|>"
NEXT = "<|start|>assistant"  # between messages
CALL_END = "<|call|>"


def call_header(recipient: str) -> str:
    return f"<|channel|>commentary to={recipient} <|constrain|>json<|message|>"


def final_message(content: dict[str, Any]) -> dict[str, Any]:
    """The final channel's message, its text following `content` (a structural-tag format)."""
    return {"type": "tag", "begin": FINAL, "content": content, "end": ["<|return|>", "<|end|>"]}


def after_analysis(answer: dict[str, Any]) -> dict[str, Any]:
    """The message stream: an optional analysis message (free text: the thinking), then `answer`. Also what a
    `response_format` without tools becomes on gpt-oss (runtime/reasoning/grammar.py)."""
    analysis = {"type": "tag", "begin": ANALYSIS, "content": {"type": "any_text"}, "end": "<|end|>"}
    thinking = {"type": "optional", "content": {"type": "sequence", "elements": [
        analysis, {"type": "const_string", "value": NEXT}]}}
    return {"type": "sequence", "elements": [thinking, answer]}


class HarmonyFormat:
    name = "harmony"
    keeps_special_tokens = True  # the channel markers are special tokens

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        return [CallTag(t.name, call_header(f"functions.{t.name}"), "") for t in tools]

    def parser(self, tools: tuple[Tool, ...]) -> JsonCallParser:
        return JsonCallParser(self.tags(tools), [TRIGGER])

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        named = [t for t in tools if choice.mode is not ToolChoiceMode.NAMED or t.name == choice.name]
        calls = {"type": "tags_with_separator", "separator": NEXT, "at_least_one": True, "stop_after_first": True,
                 "tags": [{"type": "tag", "begin": call_header(f"functions.{t.name}"),
                           "content": json_content(schemas[t.name]), "end": CALL_END} for t in named]}
        final = final_message(json_content(text_schema) if text_schema is not None else {"type": "any_text"})
        match choice.mode:
            case ToolChoiceMode.REQUIRED | ToolChoiceMode.NAMED:
                answer: dict[str, Any] = calls
            case ToolChoiceMode.NONE:
                answer = final
            case _:
                answer = {"type": "or", "elements": [final, calls]}
        return structural_tag(after_analysis(answer))

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        return "".join(f"{NEXT}{call_header('functions.' + c.name)}{json.dumps(c.arguments, ensure_ascii=False)}"
                       f"{CALL_END}" for c in calls)

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        listing = "\n".join(json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters},
                                       ensure_ascii=False) for t in tools)
        return f"# Tools\n\n## functions\n\n{listing}"

    def render_tool_result(self, content: str) -> str:
        return content
