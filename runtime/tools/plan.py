"""From a chat request's tools, tool_choice and response_format to what the engine runs: the messages and
tool list the template renders, one constraint, and a parser for the output."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from typing import Any

from runtime.constraints import check_schema_compiles
from runtime.errors import InvalidRequest
from runtime.templating import message_dicts, tool_dicts
from runtime.tools.base import CallParser, OnlyCalls, ToolFormat
from runtime.tools.budget import DEFAULT_GRAMMAR_BUDGET, check_grammar_budget
from runtime.tools.freeform import FREEFORM_KEY
from runtime.tools.schemas import relax
from runtime.types import ChatRequest, Constraint, ConstraintKind, Message, ResponseFormat, ToolChoiceMode


@dataclass
class ChatPlan:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None  # for templates that render tools themselves
    constraint: Constraint | None
    parser: CallParser | None
    json_text: bool = False  # the text part of the output is a JSON document (response_format)
    keep_special_tokens: bool = False  # the parser needs the format's special-token markers in the text


def text_schema(response_format: ResponseFormat) -> dict[str, Any] | None:
    if response_format.type == "json_object":
        return {"type": "object"}
    if response_format.type == "json_schema":
        schema = response_format.schema or {"type": "object"}
        relaxed, removed = relax(schema, strict=response_format.strict)
        if removed and response_format.strict:
            raise InvalidRequest(
                f"response_format schema is strict but uses {', '.join(removed)}, which cannot be enforced.",
                param=response_format.source,
            )
        return relaxed
    return None


def text_sources(response_format: ResponseFormat, json_text: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The output's own schema (param, schema) for the grammar checks; a regex costs what a pattern would."""
    grammar = response_format.grammar
    if grammar is not None and grammar.kind is ConstraintKind.REGEX:
        return [(response_format.source, {"type": "string", "pattern": grammar.text})]
    return [(response_format.source, json_text)] if json_text is not None else []


def check_grammar(schemas: list[tuple[str, Any]], grammar_budget: int) -> None:
    """The schemas (param, schema as it goes into the grammar: relaxed) that make a request's grammar: within
    the compile budget, then each one as xgrammar reads it (runtime/constraints.py)."""
    check_grammar_budget(schemas, grammar_budget)
    for param, schema in schemas:
        if isinstance(schema, dict):
            check_schema_compiles({k: v for k, v in schema.items() if k != FREEFORM_KEY}, param)


def text_constraint(response_format: ResponseFormat, schema: dict[str, Any] | None) -> Constraint | None:
    """The constraint on output that is all text (no tools): the request's grammar, or its JSON schema (`schema`:
    text_schema's, made once per request)."""
    if response_format.grammar is not None:
        return response_format.grammar
    return None if schema is None else Constraint(ConstraintKind.JSON_SCHEMA, json.dumps(schema, ensure_ascii=False))


def plan_chat(request: ChatRequest, fmt: ToolFormat, template_renders_tools: bool, *,
              template_renders_calls: bool | None = None,
              grammar_budget: int = DEFAULT_GRAMMAR_BUDGET) -> ChatPlan:
    """`template_renders_tools`: the template shows the tool list and past calls; `template_renders_calls`
    (default: the same): it shows past calls and results, even if not the list (DeepSeek V3.1's), which then
    goes into the system prompt in the format's wording. Also refuses, before any engine sees them, schemas
    whose grammar is estimated to cost more than `grammar_budget` to compile (runtime/tools/budget.py)."""
    json_text = text_schema(request.response_format)
    text_source = text_sources(request.response_format, json_text)
    grammar = request.response_format.grammar
    if not request.tools:
        check_grammar(text_source, grammar_budget)
        return ChatPlan(message_dicts(request.messages), None, text_constraint(request.response_format, json_text),
                        None, json_text is not None)
    if grammar is not None and request.tool_choice.mode is not ToolChoiceMode.NONE:
        # A regex, grammar, choice or structural tag describes the whole output, leaving calls no room (vLLM
        # refuses the pair too); a JSON schema combines with tools (docs/TOOLS.md).
        raise InvalidRequest("A regex, grammar, choice or structural tag constraint cannot be combined with tools "
                             "unless tool_choice is none.", param="tool_choice")

    schemas: dict[str, Any] = {}
    for tool in request.tools:
        relaxed, removed = relax(tool.parameters, strict=tool.strict)
        if removed and tool.strict:
            raise InvalidRequest(
                f"Tool {tool.name!r} is strict but its schema uses {', '.join(removed)}, "
                "which the grammar cannot enforce.",
                param=tool.source,
            )
        if tool.freeform_grammar is not None:
            relaxed = {**relaxed, FREEFORM_KEY: tool.freeform_grammar}
        schemas[tool.name] = relaxed
    choice = request.tool_choice  # (names unique, a named choice among them: ChatRequest checked)
    # What the grammar holds: no tool's arguments with tool_choice none, only the named one's when named.
    compiled = [] if choice.mode is ToolChoiceMode.NONE else [
        (t.source, schemas[t.name]) for t in request.tools
        if choice.mode is not ToolChoiceMode.NAMED or t.name == choice.name]
    check_grammar(text_source + compiled, grammar_budget)

    if grammar is not None:  # (tool_choice none: the tools are rendered, the grammar is the whole output)
        constraint = grammar
    else:
        tag = fmt.structural_tag(request.tools, schemas, choice, json_text)
        constraint = Constraint(ConstraintKind.STRUCTURAL_TAG, json.dumps(tag, ensure_ascii=False))
    parser = None
    if choice.mode is not ToolChoiceMode.NONE:
        # The parser reads what the grammar enforces: the relaxed schemas (a bound relax() dropped is free text
        # to the grammar, so it must be to the parser too).
        parser = fmt.parser(tuple(replace(t, parameters=schemas[t.name]) for t in request.tools))
        if choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED):
            parser = OnlyCalls(parser)
    renders_calls = template_renders_tools if template_renders_calls is None else template_renders_calls
    if template_renders_tools:
        messages, tools = message_dicts(request.messages), tool_dicts(request.tools)
    elif renders_calls:
        messages, tools = _with_instructions(message_dicts(request.messages), fmt.system_prompt(request.tools)), None
    else:
        messages, tools = _inline_tools(request.messages, request, fmt), None
    return ChatPlan(messages, tools, constraint, parser, json_text is not None,
                    keep_special_tokens=parser is not None and fmt.keeps_special_tokens)


def _inline_tools(messages: tuple[Message, ...], request: ChatRequest, fmt: ToolFormat) -> list[dict[str, Any]]:
    """For templates that know nothing of tools: the tool list goes into the system prompt, calls into the
    assistant's text and results into user turns, all in the format's own syntax (docs/TOOLS.md)."""
    out: list[dict[str, Any]] = []
    instructions = fmt.system_prompt(request.tools)
    for role, group in itertools.groupby(messages, key=lambda m: m.role):
        if role == "tool":  # consecutive results share one user turn, as Qwen's template does
            out.append({"role": "user", "content": "\n".join(fmt.render_tool_result(m.content) for m in group)})
            continue
        for m in group:
            if m.tool_calls:
                out.append({"role": m.role, "content": "\n".join(p for p in (m.content, fmt.render_calls(m.tool_calls)) if p)})
            else:
                out.append({"role": m.role, "content": m.content})
    return _with_instructions(out, instructions)


def _with_instructions(messages: list[dict[str, Any]], instructions: str) -> list[dict[str, Any]]:
    """The tool instructions at the end of the system message (a new one when there is none)."""
    out = list(messages)
    if out and out[0]["role"] == "system":
        out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{instructions}"}
    else:
        out.insert(0, {"role": "system", "content": instructions})
    return out
