"""DeepSeek tool calls in DeepSeek's special tokens, arguments as a JSON object: V3.1's form, and the older
form of DeepSeek-V3 (0324) and R1 (R1-0528), which types each call and fences its arguments as markdown.

V3.1 (`deepseek_v31`):

    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>

As xgrammar's `deepseek_v3_1` model tag builds it (also used by DeepSeek-V3.1-Terminus and V3.2-Exp, whose
templates write the same): calls follow one another with nothing between them, and the block ends the
turn. The markers are special tokens: the output is detokenized with special tokens kept.

V3.1's template renders past calls but not the tool list (`'...' + tool['function']['arguments']`, so it needs
the arguments as JSON text: the template probe in runtime/templating.py finds that out); the list goes in
the system prompt in the wording of DeepSeek's model card.

V3 / R1 (`deepseek_v3`, vLLM's name for it; SGLang's `deepseekv3`):

    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
    ```json
    {...}
    ```<｜tool▁call▁end｜>
    <｜tool▁call▁begin｜>function<｜tool▁sep｜>...<｜tool▁call▁end｜><｜tool▁calls▁end｜>

As xgrammar's `deepseek_r1` model tag builds it: the same block, each call's type (`function`) before the
separator, the name after it, the arguments in a ```json fence, calls separated by a newline (R1's templates
write `'\\n' + '<｜tool▁call▁begin｜>'` between them).
"""

from __future__ import annotations

import json
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.grammar import block_calls_format, json_content, structural_tag
from runtime.tools.json_calls import JsonCallParser
from runtime.types import Tool, ToolCall, ToolChoice

TRIGGER = "<｜tool▁calls▁begin｜>"
BLOCK_END = "<｜tool▁calls▁end｜>"
CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
SEP = "<｜tool▁sep｜>"


class DeepSeekV31Format:
    name = "deepseek_v31"
    keeps_special_tokens = True  # all of the markers
    separator = ""  # between calls

    def call_begin(self, name: str) -> str:
        return f"{CALL_BEGIN}{name}{SEP}"

    def call_end(self) -> str:
        return CALL_END

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        return [CallTag(t.name, self.call_begin(t.name), self.call_end()) for t in tools]

    def parser(self, tools: tuple[Tool, ...]) -> JsonCallParser:
        return JsonCallParser(self.tags(tools), [TRIGGER], openers=(TRIGGER,), separator=self.separator,
                              closer=BLOCK_END)

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        return structural_tag(block_calls_format(
            self.tags(tools), lambda name: json_content(schemas[name]), choice, block_begin=TRIGGER,
            block_end=BLOCK_END, trigger=TRIGGER, separator=self.separator, text_schema=text_schema))

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        if not calls:
            return ""
        return TRIGGER + self.separator.join(
            f"{self.call_begin(c.name)}{json.dumps(c.arguments, ensure_ascii=False)}{self.call_end()}"
            for c in calls) + BLOCK_END

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # The tool prompt of DeepSeek-V3.1's model card.
        listing = "".join(f"### {t.name}\nDescription: {t.description}\n\nParameters: "
                          f"{json.dumps(t.parameters, ensure_ascii=False)}\n\n" for t in tools)
        return (
            f"## Tools\nYou have access to the following tools:\n\n{listing}"
            "IMPORTANT: ALWAYS adhere to this exact format for tool use:\n"
            f"{TRIGGER}{CALL_BEGIN}tool_call_name{SEP}tool_call_arguments{CALL_END}{{{{additional_tool_calls}}}}"
            f"{BLOCK_END}\n\nWhere:\n\n- `tool_call_name` must be an exact match to one of the available tools\n"
            "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n"
            "- For multiple tool calls, chain them directly without separators or spaces"
        )

    def render_tool_result(self, content: str) -> str:
        return f"<｜tool▁output▁begin｜>{content}<｜tool▁output▁end｜>"


class DeepSeekV3Format(DeepSeekV31Format):
    name = "deepseek_v3"
    separator = "\n"

    def call_begin(self, name: str) -> str:
        return f"{CALL_BEGIN}function{SEP}{name}\n```json\n"

    def call_end(self) -> str:
        return f"\n```{CALL_END}"

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # R1's templates render no tool list; this is the wording of the tool template vLLM and SGLang ship for
        # R1-0528 (examples/tool_chat_template_deepseekr1.jinja).
        listing = "".join("\n```json\n" + json.dumps({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}}, ensure_ascii=False) + "\n```\n"
            for t in tools)
        return (
            "You are a helpful assistant with tool calling capabilities. When a tool call is needed, you MUST use "
            f"the following format to issue the call:\n{TRIGGER}{CALL_BEGIN}function{SEP}FUNCTION_NAME\n"
            f'```json\n{{"param1": "value1", "param2": "value2"}}\n```{CALL_END}{BLOCK_END}\n\n'
            "Make sure the JSON is valid.## Tools\n\n### Function\n\nYou have the following functions available:\n\n"
            f"{listing}"
        )
