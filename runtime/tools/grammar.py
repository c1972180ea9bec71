"""Building xgrammar structural tags from call tags: the shapes every tag-based format shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.tools.base import CallTag
from runtime.tools.freeform import FREEFORM_KEY, freeform_content
from runtime.types import ToolChoice, ToolChoiceMode

# Bounded whitespace inside JSON: unbounded, a model (a random one especially) can pad forever.
MAX_WHITESPACE = 1


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments (or a JSON answer) following `schema`; a freeform tool's follow its grammar."""
    if FREEFORM_KEY in schema:
        return freeform_content(schema[FREEFORM_KEY])
    return {"type": "json_schema", "json_schema": schema, "max_whitespace_cnt": MAX_WHITESPACE}


def calls_format(
    tags: list[CallTag],
    schemas: dict[str, Any],
    choice: ToolChoice,
    *,
    trigger: str,
    separator: str,
    text_schema: dict[str, Any] | None,
) -> dict[str, Any]:
    """`content_calls_format` for the common case: one trigger, arguments as a JSON object."""
    return content_calls_format(tags, lambda name: json_content(schemas[name]), choice, triggers=[trigger],
                                separator=separator, text_schema=text_schema)


def structural_tag(format_: dict[str, Any]) -> dict[str, Any]:
    return {"type": "structural_tag", "format": format_}


def xml_content(schema: dict[str, Any], style: str = "qwen_xml") -> dict[str, Any]:
    """Arguments written as XML parameters (`<parameter=key>value</parameter>`) instead of a JSON object. (A
    freeform tool's call is built around its grammar by runtime/tools/xml_calls.py, not here.)"""
    schema = {k: v for k, v in schema.items() if k != FREEFORM_KEY}
    return {**json_content(schema), "style": style}


def content_calls_format(
    tags: list[CallTag],
    content: Callable[[str], dict[str, Any]],
    choice: ToolChoice,
    *,
    triggers: list[str],
    separator: str,
    text_schema: dict[str, Any] | None,
) -> dict[str, Any]:
    """The format for `choice`, `content(tool_name)` giving each call's arguments format:
    - auto: free text in which each call, from a trigger on, is constrained (or, with a response_format
      schema, either that JSON document or calls);
    - required / named: only calls (at least one; exactly the named tool, once), then the end of output;
    - none: free text that cannot contain a trigger.
    `parallel` false allows a single call."""
    if choice.mode is ToolChoiceMode.NAMED:
        tags = [t for t in tags if t.name == choice.name]
    tag_list = [{"type": "tag", "begin": t.begin, "content": content(t.name), "end": t.end} for t in tags]
    single = not choice.parallel or choice.mode is ToolChoiceMode.NAMED
    if choice.mode is ToolChoiceMode.NONE:
        if text_schema is not None:
            return json_content(text_schema)
        return {"type": "any_text", "excludes": list(triggers)}
    only_calls = {"type": "tags_with_separator", "tags": tag_list, "separator": separator,
                  "at_least_one": True, "stop_after_first": single}
    if choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED):
        return only_calls
    if text_schema is not None:
        return {"type": "or", "elements": [json_content(text_schema), only_calls]}
    return {"type": "triggered_tags", "triggers": list(triggers), "tags": tag_list,
            "at_least_one": False, "stop_after_first": single}


def block_calls_format(
    tags: list[CallTag],
    content: Callable[[str], dict[str, Any]],
    choice: ToolChoice,
    *,
    block_begin: str,
    block_end: str,
    trigger: str,
    separator: str,
    text_schema: dict[str, Any] | None,
) -> dict[str, Any]:
    """Like `content_calls_format`, for families whose calls of one response form a single block
    (`block_begin`, calls separated by `separator`, `block_end`), opened by `trigger` (a prefix of
    `block_begin`):
    - auto: free text, then at most one block, which ends the output;
    - required / named: only the block (at least one call; exactly the named tool, once);
    - none: free text that cannot contain the trigger.
    `parallel` false allows one call in the block."""
    if choice.mode is ToolChoiceMode.NONE:
        if text_schema is not None:
            return json_content(text_schema)
        return {"type": "any_text", "excludes": [trigger]}
    if choice.mode is ToolChoiceMode.NAMED:
        tags = [t for t in tags if t.name == choice.name]
    single = not choice.parallel or choice.mode is ToolChoiceMode.NAMED
    calls = {"type": "tags_with_separator",
             "tags": [{"type": "tag", "begin": t.begin, "content": content(t.name), "end": t.end} for t in tags],
             "separator": separator, "at_least_one": True, "stop_after_first": single}
    block = {"type": "tag", "begin": block_begin, "content": calls, "end": block_end}
    if choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED):
        return block
    if text_schema is not None:
        return {"type": "or", "elements": [json_content(text_schema), block]}
    return {"type": "triggered_tags", "triggers": [trigger], "tags": [block], "at_least_one": False,
            "stop_after_first": True}
