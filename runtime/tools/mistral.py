"""Mistral tool calls, the pre-v11 form: `[TOOL_CALLS][{"name": "fn", "arguments": {...}}, ...]`.

One `[TOOL_CALLS]` marker, then a JSON array of call objects separated by `, `, and the turn ends. Mistral's
v3 templates (Mistral-7B-Instruct-v0.3, Mixtral-8x22B, Mistral-Nemo) write `[TOOL_CALLS] [` with a space
(the SentencePiece word boundary before `[`); the grammar allows both, and `render_calls` writes the
compact form. History calls in those templates also carry a 9-character `"id"`, which models do not
generate; the grammar allows name and arguments only.

The v11+ tokenizers (Mistral-Small-3.x, Magistral, Devstral) use a different form instead,
`[TOOL_CALLS]fn[ARGS]{...}`: that is runtime/tools/mistral_v11.py.

`[TOOL_CALLS]` is a special (control) token in Mistral's tokenizers: the parser can only see it when the
output is detokenized with special tokens kept.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.grammar import json_content, structural_tag
from runtime.tools.json_calls import JsonCallParser
from runtime.types import Tool, ToolCall, ToolChoice, ToolChoiceMode

TRIGGER = "[TOOL_CALLS]"
OPENERS = (TRIGGER + "[", TRIGGER + " [")
SEPARATOR = ", "
CLOSER = "]"


def tool_listing(tools: tuple[Tool, ...]) -> str:
    """The tools as Mistral's templates list them inside [AVAILABLE_TOOLS] (both forms)."""
    return json.dumps([{"type": "function", "function": {"name": t.name, "description": t.description,
                                                         "parameters": t.parameters}} for t in tools],
                      ensure_ascii=False)


class MistralFormat:
    name = "mistral"
    keeps_special_tokens = True  # [TOOL_CALLS]

    def trigger(self) -> str:
        return TRIGGER

    def separator(self) -> str:
        return SEPARATOR

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        return [CallTag(t.name, f'{{"name": {json.dumps(t.name)}, "arguments": ', "}") for t in tools]

    def parser(self, tools: tuple[Tool, ...]) -> JsonCallParser:
        return JsonCallParser(self.tags(tools), [TRIGGER], openers=OPENERS, separator=SEPARATOR, closer=CLOSER)

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        """Like `calls_format`, but the calls of one response form a single array after one trigger:
        - auto: free text, then at most one `[TOOL_CALLS][...]` block, which ends the output;
        - required / named: only the block (at least one call; exactly the named tool, once);
        - none: free text that cannot contain `[TOOL_CALLS]`.
        `parallel` false allows one call in the array."""
        if choice.mode is ToolChoiceMode.NONE:
            if text_schema is not None:
                return structural_tag(json_content(text_schema))
            return structural_tag({"type": "any_text", "excludes": [TRIGGER]})
        tags = self.tags(tools)
        if choice.mode is ToolChoiceMode.NAMED:
            tags = [t for t in tags if t.name == choice.name]
        single = not choice.parallel or choice.mode is ToolChoiceMode.NAMED
        calls = {
            "type": "tags_with_separator",
            "tags": [{"type": "tag", "begin": t.begin, "content": json_content(schemas[t.name]), "end": t.end}
                     for t in tags],
            "separator": SEPARATOR, "at_least_one": True, "stop_after_first": single,
        }
        opening = {"type": "or", "elements": [{"type": "const_string", "value": "["},
                                              {"type": "const_string", "value": " ["}]}
        block = {"type": "tag", "begin": TRIGGER, "content": {"type": "sequence", "elements": [opening, calls]},
                 "end": CLOSER}
        if choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED):
            return structural_tag(block)
        if text_schema is not None:
            return structural_tag({"type": "or", "elements": [json_content(text_schema), block]})
        return structural_tag({"type": "triggered_tags", "triggers": [TRIGGER], "tags": [block],
                               "at_least_one": False, "stop_after_first": True})

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        if not calls:
            return ""
        items = SEPARATOR.join(json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)
                               for c in calls)
        return f"{TRIGGER}[{items}]"

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # Mistral's v3 templates list the tools this way, just before the last user message.
        return f"[AVAILABLE_TOOLS] {tool_listing(tools)}[/AVAILABLE_TOOLS]"

    def render_tool_result(self, content: str) -> str:
        return f'[TOOL_RESULTS] {{"content": {json.dumps(content, ensure_ascii=False)}}}[/TOOL_RESULTS]'
