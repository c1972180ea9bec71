"""Qwen3-Coder XML tool calls:

    <tool_call>
    <function=NAME>
    <parameter=KEY>
    VALUE
    </parameter>
    ...
    </function>
    </tool_call>

The arguments are not JSON: each parameter is an XML-ish element whose text is the value. The grammar is
xgrammar's JSON schema in its "qwen_xml" style, which keeps the tool's schema: a `string` parameter is raw
text (anything but `</parameter>`), every other type is written as JSON (`3`, `true`, `null`, `[1, 2]`,
`{"a": 1}`), with at most one whitespace character around it. Between calls the template writes `\n`.

The parser (runtime/tools/xml_calls.py, shared with the other XML-ish formats) turns this back into a JSON
object, typed by the tool's schema, and streams it. As Qwen's templates and parsers do, a string value loses
one leading and one trailing newline (the template's own formatting).

Qwen3.5 / Qwen3.6 write calls in this same syntax (their templates render past calls identically, and
xgrammar registers `qwen_3_5` as the same builder as `qwen_3_coder`); what differs there is reasoning.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.xml_calls import XmlFormat, XmlSyntax
from runtime.types import Tool, ToolCall

TRIGGER = "<tool_call>"
FUNCTION = "<function="
FUNCTION_END = "</function>"
CALL_END = "</tool_call>"
PARAMETER = "<parameter="
PARAMETER_END = "</parameter>"
SEPARATOR = "\n"
SYNTAX = XmlSyntax(block_open=TRIGGER, block_close=CALL_END, call_open=FUNCTION, name_stops=">", name_close=">",
                   call_close=FUNCTION_END, key_open=PARAMETER, key_stops=">", value_open=">",
                   value_close=PARAMETER_END, style="qwen_xml", padded=True)


class Qwen3CoderFormat(XmlFormat):
    name = "qwen3_coder"
    keeps_special_tokens = False
    syntax = SYNTAX
    separator = SEPARATOR

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        # The end starts at `</function>` (not at the newline before it, as xgrammar's preset does) so that
        # a call without parameters can be written the way Qwen's template writes it: `<function=f>\n</function>`.
        return [CallTag(t.name, f"{TRIGGER}\n{FUNCTION}{t.name}>\n", f"{FUNCTION_END}\n{CALL_END}") for t in tools]

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        return SEPARATOR.join(render_call(c.name, c.arguments) for c in calls)

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # Qwen3-Coder's own wording, so a model trained on it recognises the instructions.
        functions = []
        for t in tools:
            params = []
            for key, schema in (t.parameters.get("properties") or {}).items():
                schema = schema if isinstance(schema, dict) else {}
                extra = {k: v for k, v in schema.items() if k not in ("type", "description")}
                params.append(
                    f"<parameter>\n<name>{key}</name>\n<type>{_type_text(schema)}</type>\n"
                    f"<description>{schema.get('description', '')}</description>\n"
                    + "".join(f"<{k}>{json.dumps(v, ensure_ascii=False)}</{k}>\n" for k, v in extra.items())
                    + "</parameter>"
                )
            required = t.parameters.get("required")
            functions.append(
                f"<function>\n<name>{t.name}</name>\n<description>{t.description}</description>\n"
                "<parameters>\n" + "\n".join(params) + ("\n" if params else "")
                + (f"<required>{json.dumps(required)}</required>\n" if required else "")
                + "</parameters>\n</function>"
            )
        return (
            "# Tools\n\nYou have access to the following functions:\n\n<tools>\n" + "\n".join(functions)
            + "\n</tools>\n\n"
            "If you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
            "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n"
            "</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\n"
            "that can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
            "<IMPORTANT>\nReminder:\n"
            "- Function calls MUST follow the specified format: an inner <function=...></function> block must "
            "be nested within <tool_call></tool_call> XML tags\n"
            "- Required parameters MUST be specified\n"
            "- You may provide optional reasoning for your function call in natural language BEFORE the "
            "function call, but NOT after\n"
            "- If there is no function call available, answer the question like normal with your current "
            "knowledge and do not tell the user about function calls\n</IMPORTANT>"
        )

    def render_tool_result(self, content: str) -> str:
        return f"<tool_response>\n{content}\n</tool_response>"


def render_call(name: str, arguments: dict[str, Any]) -> str:
    """One call as Qwen3-Coder writes it: strings raw, every other value as JSON."""
    return f"{TRIGGER}\n{SYNTAX.call(name, arguments)}\n{CALL_END}"


def _type_text(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    return str(kind) if kind else "any"
