"""Anthropic Messages requests to the neutral ChatRequest.

Mapping choices (documented for users in CLAUDE_CODE_INTEGRATION.md):
- `system` (a string or text blocks) becomes the leading system message; system-role messages before the
  first user/assistant message join it.
- A system-role message later in the conversation (Claude Code sends one as the *last* message) is merged
  into a user turn: appended to the user turn it follows, or opening one. Chat templates differ on system
  messages mid-conversation (many reject them, or roles that do not alternate); every template takes a user
  turn, and the prompt prefix stays stable from one request to the next.
- Consecutive user turns merge, as do consecutive assistant turns (Anthropic's API does the same).
- tool_result blocks become tool messages, in order; `is_error` results are prefixed with "Error: ".
- tool_reference blocks (Claude Code's ToolSearch results) become a line `Tool loaded: <name>`.
- thinking blocks whose signature is ours (app/anthropic/signature.py) become the assistant message's
  reasoning, rendered as the family's template renders past thinking (most drop it; some keep the turn in
  progress's, around tool calls); a block with any other signature is dropped, as are redacted_thinking and
  unknown block types.
- `thinking`: enabled (with its budget, which the engine enforces), adaptive (the model's default) or
  disabled, mapped onto the template's switches by the reasoning format (runtime/reasoning/formats.py).
- image blocks, and documents that are not plain text (a `text` source, or a `content` source of text
  blocks), are rejected: the served models take text only.
- The `x-anthropic-billing-header:` line Claude Code puts first in the system prompt is removed, so that a
  per-request value in it (`cch=`) does not change the prompt prefix and defeat prefix caching.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import msgspec

from app.anthropic import schemas as s
from app.anthropic.ids import call_id
from app.anthropic.signature import ThinkingSigner
from app.decoding import decode_at
from runtime.errors import InvalidRequest
from runtime.limits import check_tool_count
from runtime.tools.arguments import check_arguments
from runtime.tools.schemas import check_output_schema, check_tool_name, normalise_parameters
from runtime.sampling_defaults import unset_fields
from runtime.stops import check_stops
from runtime.types import (
    ChatRequest,
    Message,
    ReasoningOptions,
    ResponseFormat,
    SamplingParams,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)

log = logging.getLogger(__name__)

BILLING_HEADER = "x-anthropic-billing-header:"
BLOCK_SEPARATOR = "\n\n"  # between text blocks merged into one message


def chat_request(req: s.MessagesRequest, signer: ThinkingSigner) -> ChatRequest:
    chat = conversation(req, signer)
    if chat.messages[-1].role == "assistant":
        raise InvalidRequest(
            "This model does not support assistant message prefill. The conversation must end with a user message.",
            param="messages",
        )
    return replace(chat, sampling=_sampling(req), clamp_max_tokens=True)


def conversation(req: s.CountTokensRequest, signer: ThinkingSigner) -> ChatRequest:
    """The request without generation settings: what count_tokens measures."""
    if not req.messages:
        raise InvalidRequest("messages: at least one message is required.", param="messages")
    builder = _Conversation(_system_prompt(req.system), signer)
    for i, message in enumerate(req.messages):
        builder.add(message, f"messages[{i}]")
    tools = _tools(req.tools or [])
    return ChatRequest(builder.finish(), tools=tools, tool_choice=_tool_choice(req.tool_choice, tools),
                       response_format=_response_format(req), reasoning=_reasoning(req))


def _reasoning(req: s.CountTokensRequest) -> ReasoningOptions:
    effort = req.output_config.effort if req.output_config is not None else None
    effort = effort if effort in ("low", "medium", "high", "max") else None
    match req.thinking:
        case s.ThinkingEnabled():  # (a budget at or above max_tokens is accepted: max_tokens bounds it anyway)
            return ReasoningOptions(True, effort, req.thinking.budget_tokens)
        case s.ThinkingDisabled():
            return ReasoningOptions(False, effort)
    return ReasoningOptions(None, effort)  # adaptive, or not asked: the model's default


# -- system prompt --------------------------------------------------------------------------------------


def _system_prompt(system: str | list[s.TextBlock] | None) -> str:
    if system is None:
        return ""
    texts = [system] if isinstance(system, str) else [block.text for block in system]
    return BLOCK_SEPARATOR.join(t for t in map(without_billing_header, texts) if t)


def without_billing_header(text: str) -> str:
    """`text` without `x-anthropic-billing-header:` lines (a block that was only that line becomes '')."""
    if BILLING_HEADER not in text.lower():
        return text
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if not line.lstrip().lower().startswith(BILLING_HEADER))


# -- messages -------------------------------------------------------------------------------------------


class _Conversation:
    """Builds the neutral message list, merging turns as the module docstring describes."""

    def __init__(self, system: str, signer: ThinkingSigner) -> None:
        self._signer = signer
        self._system = [system] if system else []
        self._messages: list[Message] = []
        self._call_names: dict[str, str] = {}  # tool_use id -> tool name, for the tool messages
        self._dropped: list[str] = []  # blocks of unknown types, for the message if nothing is left

    def add(self, message: s.MessageIn, param: str) -> None:
        blocks = _blocks(message.content, f"{param}.content", self._dropped)
        if message.role == "system":
            text = BLOCK_SEPARATOR.join(_texts(blocks))
            if not self._messages:
                self._system.append(text)
            elif text:
                self._user(text)
        elif message.role == "user":
            self._add_user(blocks)
        else:
            self._add_assistant(blocks)

    def finish(self) -> tuple[Message, ...]:
        if not self._messages:
            dropped = f" (blocks of a type this server does not know are skipped: {', '.join(self._dropped[:3])})"
            raise InvalidRequest("messages: the conversation needs at least one user message"
                                 f"{dropped if self._dropped else ''}.", param="messages")
        system = [Message("system", BLOCK_SEPARATOR.join(t for t in self._system if t))] if self._system else []
        return (*system, *self._messages)

    # -- per role --

    def _add_user(self, blocks: list[tuple[Any, str]]) -> None:
        texts: list[str] = []
        for block, where in blocks:
            if isinstance(block, s.ToolResultBlock):
                if texts:
                    self._user(BLOCK_SEPARATOR.join(texts))
                    texts = []
                self._messages.append(Message("tool", _tool_result_text(block, where),
                                              tool_call_id=call_id(block.tool_use_id),
                                              name=self._call_names.get(block.tool_use_id)))
            else:
                texts.extend(_texts([(block, where)]))
        if texts:
            self._user(BLOCK_SEPARATOR.join(texts))

    def _add_assistant(self, blocks: list[tuple[Any, str]]) -> None:
        texts: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        for block, where in blocks:
            match block:
                case s.ToolUseBlock():
                    check_arguments(block.input, f"{where}.input")
                    calls.append(ToolCall(call_id(block.id), block.name, block.input))
                    self._call_names[block.id] = block.name
                case s.ThinkingBlock():
                    if block.thinking and self._signer.verify(block.thinking, block.signature):
                        reasoning.append(block.thinking)
                    elif block.thinking:
                        log.info("%s: a thinking block whose signature is not this server's, dropped", where)
                case s.RedactedThinkingBlock():
                    pass  # encrypted for Anthropic's models; nothing a local model can read
                case s.ToolResultBlock():
                    raise InvalidRequest("tool_result blocks belong in user messages.", param=where)
                case _:
                    texts.extend(_texts([(block, where)]))
        message = Message("assistant", BLOCK_SEPARATOR.join(t for t in texts if t), tool_calls=tuple(calls),
                          reasoning="\n".join(reasoning) or None)
        previous = self._messages[-1] if self._messages else None
        if previous is not None and previous.role == "assistant":
            message = replace(
                previous, content=BLOCK_SEPARATOR.join(t for t in (previous.content, message.content) if t),
                tool_calls=previous.tool_calls + message.tool_calls,
                reasoning="\n".join(r for r in (previous.reasoning, message.reasoning) if r) or None,
            )
            self._messages[-1] = message
        else:
            self._messages.append(message)

    def _user(self, text: str) -> None:
        previous = self._messages[-1] if self._messages else None
        if previous is not None and previous.role == "user":
            self._messages[-1] = replace(previous, content=previous.content + BLOCK_SEPARATOR + text)
        else:
            self._messages.append(Message("user", text))


def _texts(blocks: Iterable[tuple[Any, str]]) -> list[str]:
    """The text of text-like blocks; images are refused, thinking skipped, tool blocks refused (callers
    handle them where they belong)."""
    out: list[str] = []
    for block, where in blocks:
        match block:
            case s.TextBlock():
                out.append(block.text)
            case s.DocumentBlock():
                out.append(_document_text(block, where))
            case s.ToolReferenceBlock():
                # Every request tool is already in the prompt's tool list (defer_loading is not honoured), so
                # a line saying which one the search loaded is what the model needs; dropping it left the
                # tool_result empty.
                out.append(f"Tool loaded: {block.tool_name}")
            case s.ImageBlock():
                raise InvalidRequest("Images are not supported by this model; send text.", param=where)
            case s.ToolUseBlock() | s.ToolResultBlock():
                kind = type(block).__struct_config__.tag
                raise InvalidRequest(f"{kind} blocks are not allowed here.", param=where)
    return out


def _blocks(content: str | list[msgspec.Raw], param: str, dropped: list[str] | None = None) -> list[tuple[Any, str]]:
    """The known blocks of a content field, each with its parameter path; a string is one text block. The
    others are noted in `dropped` ("'type' at path")."""
    if isinstance(content, str):
        return [(s.TextBlock(content), param)]
    out: list[tuple[Any, str]] = []
    for j, raw in enumerate(content):
        where = f"{param}[{j}]"
        head = decode_at(s.block_head_decoder, raw, where)
        if head.type not in s.KNOWN_BLOCK_TYPES:
            log.debug("dropping a content block of unknown type %r at %s", head.type, where)
            if dropped is not None:
                dropped.append(f"{head.type!r} at {where}")
            continue
        out.append((decode_at(s.block_decoder, raw, where), where))
    return out


def _tool_result_text(block: s.ToolResultBlock, param: str) -> str:
    text = BLOCK_SEPARATOR.join(_texts(_blocks(block.content, f"{param}.content")))
    return f"Error: {text}" if block.is_error else text


def _document_text(block: s.DocumentBlock, param: str) -> str:
    where = f"{param}.source"
    kind = decode_at(s.source_head_decoder, block.source, where).type
    if kind not in ("text", "content"):  # base64 (PDF), url, file: not text this server can read
        raise InvalidRequest(f"Documents of source type {kind!r} are not supported by this model; send text.",
                             param=where)
    source = decode_at(s.document_source_decoder, block.source, where)
    if isinstance(source, s.TextSource):
        body = source.data
    else:
        body = BLOCK_SEPARATOR.join(_texts(_blocks(source.content, f"{where}.content")))
    return f"{block.title}\n\n{body}" if block.title else body


# -- tools ----------------------------------------------------------------------------------------------


def _tools(tools_in: list[s.ToolIn]) -> tuple[Tool, ...]:
    check_tool_count(len(tools_in))  # before any tool's schema check: those are what cost
    tools: list[Tool] = []
    for i, t in enumerate(tools_in):
        if t.type not in (None, "custom"):
            # Anthropic-hosted tools (web_search_..., code_execution_...) run on Anthropic's side.
            log.debug("ignoring server tool %r of type %r: not available on this server", t.name, t.type)
            continue
        check_tool_name(t.name, f"tools[{i}].name")  # (unique names: ChatRequest checks)
        param = f"tools[{i}].input_schema"
        parameters = normalise_parameters(t.input_schema, param)
        tools.append(Tool(t.name, t.description, parameters, bool(t.strict), source=param))
    return tuple(tools)


def _tool_choice(choice: s.ToolChoiceIn | None, tools: tuple[Tool, ...]) -> ToolChoice:
    if choice is None:
        return ToolChoice(ToolChoiceMode.AUTO if tools else ToolChoiceMode.NONE)
    if isinstance(choice, s.ToolChoiceNone):
        return ToolChoice(ToolChoiceMode.NONE)
    parallel = not choice.disable_parallel_tool_use
    if isinstance(choice, s.ToolChoiceAuto):
        return ToolChoice(ToolChoiceMode.AUTO if tools else ToolChoiceMode.NONE, parallel=parallel)
    if not tools:
        raise InvalidRequest(f"tool_choice.type {type(choice).__struct_config__.tag!r} requires tools.",
                             param="tool_choice")
    if isinstance(choice, s.ToolChoiceAny):
        return ToolChoice(ToolChoiceMode.REQUIRED, parallel=parallel)
    return ToolChoice(ToolChoiceMode.NAMED, name=choice.name, parallel=parallel)


def _response_format(req: s.CountTokensRequest) -> ResponseFormat:
    if req.output_config is not None and req.output_config.format is not None:
        fmt, param = req.output_config.format, "output_config.format"
    else:
        fmt, param = req.output_format, "output_format"
    if fmt is None:
        return ResponseFormat()
    if fmt.type != "json_schema":
        raise InvalidRequest(f"Output format type {fmt.type!r} is not supported; use 'json_schema'.",
                             param=f"{param}.type")
    if fmt.schema is not None and not isinstance(fmt.schema, dict):
        raise InvalidRequest("The output format's schema must be a JSON schema object.", param=f"{param}.schema")
    if fmt.schema is not None:
        check_output_schema(fmt.schema, f"{param}.schema")
    return ResponseFormat("json_schema", fmt.schema, source=f"{param}.schema")


# -- sampling -------------------------------------------------------------------------------------------


def _sampling(req: s.MessagesRequest) -> SamplingParams:
    stops = tuple(req.stop_sequences or ())
    check_stops(stops, "stop_sequences")
    for i, stop in enumerate(stops):
        if not stop:
            raise InvalidRequest("stop_sequences must not contain empty strings.", param=f"stop_sequences[{i}]")
    return SamplingParams(
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,  # 0 is greedy (SamplingParams.greedy)
        top_k=req.top_k or 0,
        max_new_tokens=req.max_tokens,
        stop=stops,
        unset=unset_fields(req, ("temperature", "top_p", "top_k"), max_new_tokens=req.max_tokens),
    )
