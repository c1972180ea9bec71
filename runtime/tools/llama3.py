"""Llama 3.1+ JSON tool calls: `{"name": "fn", "parameters": {...}}`, optionally after `<|python_tag|>`.

Llama 3.1/3.2/3.3's chat templates ask for exactly this object (the key is "parameters", not
"arguments") and render past calls the same way. The model writes it either as bare JSON or after the
`<|python_tag|>` token. Both open a call here: the grammar's triggers are `<|python_tag|>` and
`{"name": ` (xgrammar's own Llama preset uses the latter), so in auto mode any call the model starts is
constrained from its first characters, and a `{"name": ` in plain text can only be a valid call.

Llama has no native syntax for several calls; like vLLM's and SGLang's llama parsers we take calls
separated by `; ` (`{...}; {...}`).

The calls' end is a bare `}`, which also occurs inside the arguments, so `JsonCallParser` (shared with the
Mistral format) finds the end of the arguments by following the JSON itself rather than by searching for
an end marker (see runtime/tools/json_calls.py).
"""

from __future__ import annotations

import json
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.grammar import content_calls_format, json_content, structural_tag
from runtime.tools.json_calls import JsonCallParser
from runtime.types import Tool, ToolCall, ToolChoice

PYTHON_TAG = "<|python_tag|>"
CALL_TRIGGER = '{"name": '
SEPARATOR = "; "



class Llama3JsonFormat:
    name = "llama3_json"
    keeps_special_tokens = True  # <|python_tag|>

    def triggers(self) -> list[str]:
        return [PYTHON_TAG, CALL_TRIGGER]

    def separator(self) -> str:
        return SEPARATOR

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        tags = []
        for t in tools:
            begin = f'{CALL_TRIGGER}{json.dumps(t.name)}, "parameters": '
            tags.append(CallTag(t.name, begin, "}"))
            tags.append(CallTag(t.name, PYTHON_TAG + begin, "}"))
        return tags

    def parser(self, tools: tuple[Tool, ...]) -> JsonCallParser:
        return JsonCallParser(self.tags(tools), self.triggers(), separator=SEPARATOR)

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        return structural_tag(content_calls_format(
            self.tags(tools), lambda name: json_content(schemas[name]), choice,
            triggers=self.triggers(), separator=SEPARATOR, text_schema=text_schema))

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        return SEPARATOR.join(
            f'{CALL_TRIGGER}{json.dumps(c.name)}, "parameters": {json.dumps(c.arguments, ensure_ascii=False)}}}'
            for c in calls
        )

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # Llama 3.1's own wording for JSON-based tool calling (its template puts it in the first user turn).
        listing = "\n\n".join(
            json.dumps({"type": "function", "function": {"name": t.name, "description": t.description,
                                                         "parameters": t.parameters}}, indent=4, ensure_ascii=False)
            for t in tools
        )
        return (
            "Given the following functions, please respond with a JSON for a function call with its proper "
            "arguments that best answers the given prompt.\n\n"
            'Respond in the format {"name": function name, "parameters": dictionary of argument name and '
            "its value}. Do not use variables.\n\n"
            f"{listing}"
        )

    def render_tool_result(self, content: str) -> str:
        # Llama's templates give a result its own `ipython` turn holding just the output.
        return content
