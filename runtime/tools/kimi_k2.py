"""Kimi K2 / K2.5 tool calls: a section of calls, each with an id `functions.NAME:IDX`, arguments as JSON.

    <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{...}<|tool_call_end|><|tool_calls_section_end|>

The grammar follows xgrammar's `kimi` model tag (no separator between calls; the section ends the turn)
except for the index: xgrammar admits `\\d+`, which a model that goes astray can write forever; we admit a
decimal without leading zeros of at most 6 digits.

The call's id is what the model wrote, `functions.NAME:IDX` (Kimi's templates render `tool_call['id']`
back into the prompt and `## Return of ID` before a result, and the model was trained on that form: a
`call_...` id there is a format it never saw; sglang PR #21377). Clients echo the id back, and the
Anthropic dialect maps it to and from its `^[a-zA-Z0-9_-]+$` form (app/anthropic/ids.py).

The markers are special tokens in Kimi's tokenizer: the output is detokenized with special tokens kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.grammar import block_calls_format, json_content, structural_tag
from runtime.tools.json_calls import JsonCallParser
from runtime.types import Tool, ToolCall, ToolChoice

TRIGGER = "<|tool_calls_section_begin|>"
SECTION_END = "<|tool_calls_section_end|>"
CALL_BEGIN = "<|tool_call_begin|>"
ARGUMENT_BEGIN = "<|tool_call_argument_begin|>"
CALL_END = "<|tool_call_end|>"
INDEX = r"(0|[1-9][0-9]{0,5})"


def call_id(name: str, index: str) -> str:
    return f"functions.{name}:{index}"


def _history_id(call: ToolCall, position: int) -> str:
    """The id a past call is rendered with: its own when in Kimi's form, else one made from its position."""
    if re.fullmatch(rf"functions\.{re.escape(call.name)}:[0-9]+", call.id):
        return call.id
    return call_id(call.name, str(position))


class KimiK2Format:
    name = "kimi_k2"
    keeps_special_tokens = True  # all of the markers

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        return [CallTag(t.name, f"{CALL_BEGIN}functions.{t.name}:", CALL_END) for t in tools]

    def parser(self, tools: tuple[Tool, ...]) -> JsonCallParser:
        return JsonCallParser(self.tags(tools), [TRIGGER], openers=(TRIGGER,), closer=SECTION_END,
                              index_end=ARGUMENT_BEGIN, call_id=call_id)

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        def content(name: str) -> dict[str, Any]:
            return {"type": "sequence", "elements": [{"type": "regex", "pattern": INDEX},
                                                     {"type": "const_string", "value": ARGUMENT_BEGIN},
                                                     json_content(schemas[name])]}

        return structural_tag(block_calls_format(
            self.tags(tools), content, choice, block_begin=TRIGGER, block_end=SECTION_END, trigger=TRIGGER,
            separator="", text_schema=text_schema))

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        if not calls:
            return ""
        return TRIGGER + "".join(
            f"{CALL_BEGIN}{_history_id(c, i)}{ARGUMENT_BEGIN}{json.dumps(c.arguments, ensure_ascii=False)}{CALL_END}"
            for i, c in enumerate(calls)) + SECTION_END

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # Kimi's templates declare the tools as a JSON list in their own `tool_declare` turn.
        return json.dumps([{"type": "function", "function": {"name": t.name, "description": t.description,
                                                             "parameters": t.parameters}} for t in tools],
                          ensure_ascii=False)

    def render_tool_result(self, content: str) -> str:
        return content
