"""DeepSeek-V3.2 tool calls (DSML): one `<｜DSML｜function_calls>` block holding an invoke per call.

    <｜DSML｜function_calls>
    <｜DSML｜invoke name="NAME">
    <｜DSML｜parameter name="KEY" string="true">VALUE</｜DSML｜parameter>
    </｜DSML｜invoke>
    </｜DSML｜function_calls>

The grammar follows xgrammar's `deepseek_v3_2` model tag (invoke begin `<｜DSML｜invoke name="NAME">\\n`, end
`</｜DSML｜invoke>\\n`, no separator, block `<｜DSML｜function_calls>\\n` ... `</｜DSML｜function_calls>`) with its
`deepseek_xml` arguments: string values raw, every other type JSON. xgrammar leaves `string="true|false"`
free; the parser types each value by the tool's schema (which the grammar enforced), not by the attribute.

One difference: xgrammar's tag makes a forced call start with the `\\n\\n` the template writes between
content and the block; ours starts at the block, so that a forced response has no text at all.

The output is detokenized with special tokens kept: the DSML markers (`｜` is U+FF5C) are plain text in the
template, but should a tokenizer make any of them a special token, the parser must still see it.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.tools.xml_calls import XmlFormat, XmlSyntax
from runtime.types import Tool

DSML = "｜DSML｜"
TRIGGER = f"<{DSML}function_calls>"
BLOCK_END = f"</{DSML}function_calls>"
SYNTAX = XmlSyntax(block_open=TRIGGER, block_close=BLOCK_END, call_open=f'<{DSML}invoke name="', name_stops='"',
                   name_close='">', call_close=f"</{DSML}invoke>", key_open=f'<{DSML}parameter name="',
                   key_stops='"', value_open='">', value_close=f"</{DSML}parameter>", style="deepseek_xml")


class DeepSeekV32Format(XmlFormat):
    name = "deepseek_v32"
    keeps_special_tokens = True  # (see above)
    syntax = SYNTAX
    shared_block = True

    def key_close(self, value: Any) -> str:
        return f'" string="{"true" if isinstance(value, str) else "false"}'

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # DeepSeek-V3.2's own wording (its template's render_tools), so the model recognises it.
        listing = "".join("\n" + json.dumps({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}}, ensure_ascii=False)
            for t in tools)
        return (
            "## Tools\n\nYou have access to a set of tools you can use to answer the user's question.\n"
            f'You can invoke functions by writing a "<{DSML}function_calls>" block like the following as part of '
            f'your reply to the user:\n{TRIGGER}\n<{DSML}invoke name="$FUNCTION_NAME">\n<{DSML}parameter '
            f'name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</{DSML}parameter>\n...\n</{DSML}invoke>\n'
            f"{BLOCK_END}\n\nString and scalar parameters should be specified as is without any escaping or quotes, "
            'while lists and objects should use JSON format. The "string" attribute should be set to "true" for '
            'string type parameters and "false" for other types (numbers, booleans, arrays, objects).\n\n'
            f"Here are the functions available in JSONSchema format:\n<functions>{listing}\n</functions>"
        )

    def render_tool_result(self, content: str) -> str:
        return f"<function_results>\n<result>{content}</result>\n</function_results>"
