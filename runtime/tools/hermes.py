"""Hermes / Qwen2.5 tool calls: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`.

The reference model's (Qwen2.5-Coder) native format, and the documented fallback for models whose chat
template cannot render tools.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.grammar import calls_format, structural_tag
from runtime.tools.json_calls import JsonCallParser
from runtime.types import Tool, ToolCall, ToolChoice

TRIGGER = "<tool_call>"


class HermesFormat:
    name = "hermes"
    keeps_special_tokens = False  # <tool_call> is an added, non-special token in Qwen's tokenizers

    def trigger(self) -> str:
        return TRIGGER

    def separator(self) -> str:
        return "\n"

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        return [
            CallTag(t.name, f'{TRIGGER}\n{{"name": {json.dumps(t.name)}, "arguments": ', "}\n</tool_call>")
            for t in tools
        ]

    def parser(self, tools: tuple[Tool, ...]) -> JsonCallParser:
        # No parser separator: the "\n" between calls is whitespace after a call, which the parser keeps
        # only when text follows (then it is content).
        return JsonCallParser(self.tags(tools), [TRIGGER])

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        return structural_tag(calls_format(self.tags(tools), schemas, choice, trigger=TRIGGER,
                                           separator=self.separator(), text_schema=text_schema))

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        return "\n".join(
            f'{TRIGGER}\n{json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)}\n</tool_call>'
            for c in calls
        )

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # Qwen2.5's own wording, so a model trained on it recognises the instructions.
        listing = "\n".join(
            json.dumps({"type": "function", "function": {"name": t.name, "description": t.description,
                                                         "parameters": t.parameters}}, ensure_ascii=False)
            for t in tools
        )
        return (
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>\n{listing}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        )

    def render_tool_result(self, content: str) -> str:
        return f"<tool_response>\n{content}\n</tool_response>"
