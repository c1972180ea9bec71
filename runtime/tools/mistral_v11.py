"""Mistral tool calls, the v11+ form: `[TOOL_CALLS]fn[ARGS]{...}`, one marker per call.

The tokenizers from v11 on (Mistral Small 3.x, Magistral, Devstral, Ministral 3) write each call as the
`[TOOL_CALLS]` marker, the tool's name as bare text, the `[ARGS]` marker and the arguments object, with no
array, no `name`/`arguments` keys and nothing between calls; their chat templates render past calls the same
way (`'[TOOL_CALLS]' + name + '[ARGS]' + arguments`). Each call is a tag: begin `[TOOL_CALLS]fn[ARGS]`,
the arguments, and an empty end (the JSON's own end closes it, as `JsonCallParser` follows the JSON).

`[TOOL_CALLS]` and `[ARGS]` are special (control) tokens in these tokenizers: the parser sees them only when
the output is detokenized with special tokens kept.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.grammar import calls_format, structural_tag
from runtime.tools.json_calls import JsonCallParser
from runtime.tools.mistral import tool_listing
from runtime.types import Tool, ToolCall, ToolChoice

TRIGGER = "[TOOL_CALLS]"
ARGS = "[ARGS]"


class MistralV11Format:
    name = "mistral_v11"
    keeps_special_tokens = True  # [TOOL_CALLS], [ARGS]

    def trigger(self) -> str:
        return TRIGGER

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        return [CallTag(t.name, f"{TRIGGER}{t.name}{ARGS}", "") for t in tools]

    def parser(self, tools: tuple[Tool, ...]) -> JsonCallParser:
        return JsonCallParser(self.tags(tools), [TRIGGER])

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        return structural_tag(calls_format(self.tags(tools), schemas, choice, trigger=TRIGGER, separator="",
                                           text_schema=text_schema))

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        return "".join(f"{TRIGGER}{c.name}{ARGS}{json.dumps(c.arguments, ensure_ascii=False)}" for c in calls)

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # The v11 templates' listing (no space after the marker), written before the last user message.
        return f"[AVAILABLE_TOOLS]{tool_listing(tools)}[/AVAILABLE_TOOLS]"

    def render_tool_result(self, content: str) -> str:
        return f"[TOOL_RESULTS]{content}[/TOOL_RESULTS]"
