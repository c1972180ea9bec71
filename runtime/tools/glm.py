"""GLM-4.5 / 4.6 / 4.7 tool calls: each call its own `<tool_call>` element, arguments as key/value pairs.

    <tool_call>NAME
    <arg_key>KEY</arg_key>
    <arg_value>VALUE</arg_value>
    </tool_call>

GLM-4.5 and 4.6's templates write the newlines shown; GLM-4.7's writes none (`<tool_call>NAME<arg_key>...`).
The grammar (xgrammar's `glm_xml` style, as its `glm_4_7` model tag builds it: begin `<tool_call>NAME`, end
`</tool_call>`) admits both: at most one whitespace character between the elements. String values are raw
text, every other type JSON (the templates write `v | tojson if v is not string else v`). Calls are separated
by `\\n`, as the templates render them.

`<tool_call>`, `<arg_key>` and the others are special tokens in GLM's tokenizers, so the output is
detokenized with special tokens kept.
"""

from __future__ import annotations

import json
from runtime.tools.base import CallTag
from runtime.tools.xml_calls import XmlFormat, XmlSyntax
from runtime.types import Tool, ToolCall

TRIGGER = "<tool_call>"
CALL_END = "</tool_call>"
SYNTAX = XmlSyntax(block_open=TRIGGER, block_close="", call_open="", name_stops=" \t\r\n<", name_close="",
                   call_close=CALL_END, key_open="<arg_key>", key_stops="<", value_open="<arg_value>",
                   value_close="</arg_value>", style="glm_xml", key_close="</arg_key>\n")


class Glm45Format(XmlFormat):
    """GLM-4.5 and GLM-4.6."""

    name = "glm45"
    keeps_special_tokens = True  # <tool_call>, <arg_key>, <arg_value> and their ends
    syntax = SYNTAX
    separator = "\n"  # between calls, and between the elements of one

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        return [CallTag(t.name, f"{TRIGGER}{t.name}", CALL_END) for t in tools]

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        return self.separator.join(TRIGGER + SYNTAX.call(c.name, c.arguments, newline=self.separator) for c in calls)

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # GLM's own wording (4.7's example without the newlines), so the model recognises the instructions.
        listing = "\n".join(json.dumps({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}}, ensure_ascii=False)
            for t in tools)
        return (
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            f"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{listing}\n"
            "</tools>\n\nFor each function call, output the function name and arguments within the following "
            "XML format:\n<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}"
            "</arg_value>\n<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>"
        ).replace("\n<arg_", self.separator + "<arg_").replace("\n...\n", self.separator + "..." + self.separator)

    def render_tool_result(self, content: str) -> str:
        return f"<tool_response>{self.separator}{content}{self.separator}</tool_response>"


class Glm47Format(Glm45Format):
    """GLM-4.7 (and GLM-5, whose templates write calls the same way)."""

    name = "glm47"
    separator = ""
