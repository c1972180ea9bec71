"""MiniMax-M2 tool calls: one `<minimax:tool_call>` block holding an `<invoke>` per call.

    <minimax:tool_call>
    <invoke name="NAME">
    <parameter name="KEY">VALUE</parameter>
    </invoke>
    </minimax:tool_call>

The grammar follows xgrammar's `minimax` model tag (block begin `<minimax:tool_call>\\n`, invoke begin
`<invoke name="NAME">\\n`, end `</invoke>\\n`, no separator, block end `</minimax:tool_call>`) with its
`minimax_xml` arguments: string values raw, every other type JSON, as the template writes them.

`<minimax:tool_call>` and `</minimax:tool_call>` are special tokens in MiniMax's tokenizer, so the output is
detokenized with special tokens kept.
"""

from __future__ import annotations

import json
from runtime.tools.xml_calls import XmlFormat, XmlSyntax
from runtime.types import Tool

TRIGGER = "<minimax:tool_call>"
BLOCK_END = "</minimax:tool_call>"
SYNTAX = XmlSyntax(block_open=TRIGGER, block_close=BLOCK_END, call_open='<invoke name="', name_stops='"',
                   name_close='">', call_close="</invoke>", key_open='<parameter name="', key_stops='"',
                   value_open='">', value_close="</parameter>", style="minimax_xml")


class MiniMaxFormat(XmlFormat):
    name = "minimax"
    keeps_special_tokens = True  # <minimax:tool_call>, </minimax:tool_call>
    syntax = SYNTAX
    shared_block = True

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # MiniMax-M2's own wording, so a model trained on it recognises the instructions.
        listing = "".join(f"<tool>{json.dumps({'name': t.name, 'description': t.description, 'parameters': t.parameters}, ensure_ascii=False)}</tool>\n"
                          for t in tools)
        return (
            "# Tools\nYou may call one or more tools to assist with the user query.\n"
            f"Here are the tools available in JSONSchema format:\n\n<tools>\n{listing}</tools>\n\n"
            "When making tool calls, use XML format to invoke tools and pass parameters:\n\n"
            f'{TRIGGER}\n<invoke name="tool-name-1">\n<parameter name="param-key-1">param-value-1</parameter>\n'
            f'<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n{BLOCK_END}'
        )

    def render_tool_result(self, content: str) -> str:
        return f"<response>{content}</response>"
