"""Responses requests to the neutral ChatRequest.

Mapping choices (users' view in docs/API.md, "Responses API"):
- `instructions` becomes the leading system message; `system` and `developer` messages before the first
  user/assistant item join it. One later in the conversation is merged into a user turn (as the Anthropic
  dialect does: chat templates differ on system messages mid-conversation; every template takes a user turn).
- The history of `previous_response_id` (its chain's input and output items) comes first, then this request's
  `input`. A previous response's `instructions` are not carried over, as OpenAI documents.
- Items: messages (input_text / output_text / refusal parts), function_call and custom_tool_call (calls of the
  assistant turn they follow), their *_output items (tool messages), reasoning items (the next assistant
  turn's reasoning; `encrypted_content` is another server's and is dropped). Images, files and audio are
  refused; item_reference is refused (items are not addressable here); item types this server does not know are
  dropped with a debug log line (new ones appear in every SDK release).
- Tools: `function` (strict or not: the same grammar enforcement either way); `custom` (freeform: the model
  writes the input as the one string argument `input` of a call, so the call is enforced like a function's, and
  a Lark or regex grammar given in `format` is enforced on that string: runtime/tools/freeform.py);
  `namespace` groups (Codex's) are flattened to `namespace.name` and calls name the namespace again. Hosted
  tools run on OpenAI's side: `web_search` (which Codex CLI sends on every request) is ignored with a log line,
  the others are a 400.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.decoding import decode_at
from app.responses import schemas as s
from runtime.constraints import xgrammar_message
from runtime.errors import InvalidRequest
from runtime.limits import check_tool_count
from runtime.tools.arguments import check_arguments, parse_arguments
from runtime.tools.freeform import INPUT, freeform_parameters
from runtime.tools.schemas import check_output_schema, check_tool_name, normalise_parameters
from runtime.sampling_defaults import unset_fields
from runtime.types import (
    ChatRequest,
    FieldNames,
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

PART_SEPARATOR = "\n\n"  # between system texts merged into one message
IGNORED_HOSTED_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26",
                                  "web_search_preview_2025_03_11"})
LOGPROBS_INCLUDE = "message.output_text.logprobs"


@dataclass(frozen=True, slots=True)
class ToolName:
    """How a tool the model calls by `flat` name appears in output items."""

    kind: str  # "function" or "custom"
    name: str
    namespace: str | None = None


@dataclass
class Converted:
    chat: ChatRequest
    names: dict[str, ToolName] = field(default_factory=dict)  # the model's tool names -> the client's
    tools_out: list[Any] = field(default_factory=list)  # the request's tools, echoed on the response
    tool_choice_out: Any = "auto"


def chat_request(req: s.ResponsesRequest, history: list[msgspec.Raw]) -> Converted:
    """`history`: the input and output items of the previous responses' chain, oldest first."""
    if req.background:
        raise InvalidRequest("Background responses are not supported by this server; omit `background`.",
                             param="background")
    if req.conversation is not None:
        raise InvalidRequest("The Conversations API is not supported by this server; use previous_response_id.",
                             param="conversation")
    if req.prompt is not None:
        raise InvalidRequest("Stored prompt templates are not supported by this server; send `input`.",
                             param="prompt")
    builder = _Conversation(req.instructions or "")
    for i, raw in enumerate(history):
        builder.add(raw, f"previous_response_id (item {i})")
    items = [msgspec.Raw(msgspec.json.encode(s.MessageItem(role="user", content=req.input)))] \
        if isinstance(req.input, str) else req.input
    for i, raw in enumerate(items):
        builder.add(raw, "input" if isinstance(req.input, str) else f"input[{i}]")
    tools, names, tools_out = _tools(req.tools or [])
    choice = _tool_choice(req.tool_choice, tools, names, req.parallel_tool_calls)
    logprobs = (req.top_logprobs or 0) if LOGPROBS_INCLUDE in (req.include or ()) else None
    sampling = SamplingParams(
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        seed=req.seed,
        max_new_tokens=req.max_output_tokens,
        logprobs=logprobs,
        unset=unset_fields(req, ("temperature", "top_p"), max_new_tokens=req.max_output_tokens),
    )
    chat = ChatRequest(builder.finish(), sampling=sampling, tools=tools, tool_choice=choice,
                       response_format=_response_format(req.text), reasoning=_reasoning(req.reasoning),
                       fields=FieldNames(prompt="input", max_tokens="max_output_tokens"))
    return Converted(chat, names, tools_out, _tool_choice_out(req.tool_choice))


def _reasoning(config: s.ReasoningConfig | None) -> ReasoningOptions:
    """`reasoning.effort` as chat completions' reasoning_effort: "none"/"minimal" off, the others on."""
    effort = config.effort if config is not None else None
    if effort is None:
        return ReasoningOptions()
    return ReasoningOptions(effort not in ("none", "minimal"), effort)


# -- items ----------------------------------------------------------------------------------------------


class _Conversation:
    def __init__(self, instructions: str) -> None:
        self._system = [instructions] if instructions else []
        self._messages: list[Message] = []
        self._call_names: dict[str, str] = {}  # call_id -> the model's tool name, for the tool messages
        self._reasoning: list[str] = []  # reasoning items waiting for the assistant turn they belong to

    def add(self, raw: msgspec.Raw, where: str) -> None:
        kind = decode_at(s.head_decoder, raw, where).type
        if kind is None or kind == "message":
            self._message(decode_at(s.message_decoder, raw, where), where)
            return
        if kind not in s.KNOWN_ITEM_TYPES:
            log.debug("dropping an input item of unknown type %r at %s", kind, where)
            return
        item = decode_at(s.item_decoder, raw, where)
        match item:
            case s.FunctionCallItem():
                name = f"{item.namespace}.{item.name}" if item.namespace else item.name
                self._call(ToolCall(item.call_id, name, parse_arguments(item.arguments, f"{where}.arguments")))
            case s.CustomToolCallItem():
                name = f"{item.namespace}.{item.name}" if item.namespace else item.name
                arguments = {INPUT: item.input}
                check_arguments(arguments, f"{where}.input")
                self._call(ToolCall(item.call_id, name, arguments))
            case s.FunctionCallOutputItem() | s.CustomToolCallOutputItem():
                text = self._text(item.output, f"{where}.output")
                self._messages.append(Message("tool", text, tool_call_id=item.call_id,
                                              name=self._call_names.get(item.call_id)))
            case s.ReasoningItem():
                texts = [part.text for part in item.content or ()] or [part.text for part in item.summary]
                self._reasoning.extend(t for t in texts if t)
            case s.ItemReference():
                raise InvalidRequest("item_reference items are not supported by this server; send the item itself.",
                                     param=where)

    def _message(self, item: s.MessageItem, where: str) -> None:
        text = self._text(item.content, f"{where}.content")
        if item.role in ("system", "developer"):
            if not self._messages:
                self._system.append(text)
            elif text:
                self._user(text)
        elif item.role == "user":
            self._user(text)
        else:
            self._assistant(Message("assistant", text))

    def _call(self, call: ToolCall) -> None:
        self._call_names[call.id] = call.name
        self._assistant(Message("assistant", tool_calls=(call,)))

    def _assistant(self, message: Message) -> None:
        reasoning = "\n".join(self._reasoning) or None
        self._reasoning = []
        previous = self._messages[-1] if self._messages else None
        if previous is not None and previous.role == "assistant":  # text and calls of one turn come as items
            self._messages[-1] = Message(
                "assistant", PART_SEPARATOR.join(t for t in (previous.content, message.content) if t),
                tool_calls=previous.tool_calls + message.tool_calls,
                reasoning="\n".join(r for r in (previous.reasoning, reasoning) if r) or None)
        else:
            self._messages.append(Message("assistant", message.content, message.tool_calls, reasoning=reasoning))

    def _user(self, text: str) -> None:
        previous = self._messages[-1] if self._messages else None
        if previous is not None and previous.role == "user":
            self._messages[-1] = Message("user", previous.content + PART_SEPARATOR + text)
        else:
            self._messages.append(Message("user", text))

    @staticmethod
    def _text(content: str | list[Any], where: str) -> str:
        if isinstance(content, str):
            return content
        texts = []
        for j, part in enumerate(content):
            match part:
                case s.InputText() | s.OutputTextIn():
                    texts.append(part.text)
                case s.RefusalIn():
                    texts.append(part.refusal)
                case _:
                    kind = type(part).__struct_config__.tag
                    raise InvalidRequest(f"Content of type {kind!r} is not supported by this model; send text.",
                                         param=f"{where}[{j}]")
        return "".join(texts)

    def finish(self) -> tuple[Message, ...]:
        if not any(m.role == "user" or m.role == "tool" for m in self._messages):
            raise InvalidRequest("input: the conversation needs at least one user message.", param="input")
        system = [Message("system", PART_SEPARATOR.join(t for t in self._system if t))] if self._system else []
        return (*system, *self._messages)


# -- tools ----------------------------------------------------------------------------------------------


def _tools(tools_in: list[msgspec.Raw]) -> tuple[tuple[Tool, ...], dict[str, ToolName], list[Any]]:
    check_tool_count(len(tools_in))
    tools: list[Tool] = []
    names: dict[str, ToolName] = {}
    echoed: list[Any] = []

    def add(tool: Tool, name: ToolName, where: str) -> None:
        check_tool_name(tool.name, where)
        if tool.name in names:
            raise InvalidRequest(f"Tool names must be unique; {tool.name!r} appears twice.", param=where)
        names[tool.name] = name
        tools.append(tool)

    for i, raw in enumerate(tools_in):
        where = f"tools[{i}]"
        kind = decode_at(s.head_decoder, raw, where).type
        if kind in IGNORED_HOSTED_TOOLS:
            log.info("ignoring the hosted tool %r at %s: this server has no web search (the model cannot call it)",
                     kind, where)
            continue
        if kind not in s.CLIENT_TOOL_TYPES:
            raise InvalidRequest(f"Tools of type {kind!r} run on OpenAI's servers and are not supported here; "
                                 "send function or custom tools.", param=f"{where}.type")
        tool = decode_at(s.tool_decoder, raw, where)
        echoed.append(msgspec.json.decode(raw))
        if isinstance(tool, s.NamespaceTool):
            check_tool_count(len(tools) + len(tool.tools))
            for j, inner_raw in enumerate(tool.tools):
                inner_where = f"{where}.tools[{j}]"
                inner = decode_at(s.tool_decoder, inner_raw, inner_where)
                if isinstance(inner, s.NamespaceTool):
                    raise InvalidRequest("Namespaces do not nest.", param=inner_where)
                flat, name = _one_tool(inner, inner_where, tool.name)
                add(flat, name, inner_where)
        else:
            flat, name = _one_tool(tool, where, None)
            add(flat, name, where)
    return tuple(tools), names, echoed


def _one_tool(tool: s.FunctionTool | s.CustomTool, where: str, namespace: str | None) -> tuple[Tool, ToolName]:
    flat = f"{namespace}.{tool.name}" if namespace else tool.name
    if isinstance(tool, s.FunctionTool):
        parameters = normalise_parameters(tool.parameters, f"{where}.parameters")
        return Tool(flat, tool.description or "", parameters, bool(tool.strict)), \
            ToolName("function", tool.name, namespace)
    description = tool.description or ""
    grammar = None
    if isinstance(tool.format, s.GrammarFormat):
        grammar = freeform_grammar(tool.format, f"{where}.format")
        description += f"\n\nThe input follows this {tool.format.syntax} grammar:\n{tool.format.definition}"
    return Tool(flat, description.strip(), freeform_parameters(), True, freeform_grammar=grammar), \
        ToolName("custom", tool.name, namespace)


def freeform_grammar(fmt: s.GrammarFormat, where: str) -> str:
    """A custom tool's grammar as xgrammar's EBNF (xgrammar reads Lark and regular expressions)."""
    import xgrammar

    try:
        if fmt.syntax == "lark":
            return str(xgrammar.Grammar.from_lark(fmt.definition))
        return str(xgrammar.Grammar.from_regex(fmt.definition))
    except Exception as exc:  # xgrammar raises RuntimeError or its own parse errors
        raise InvalidRequest(f"The custom tool's {fmt.syntax} grammar does not compile: {xgrammar_message(exc)}",
                             param=f"{where}.definition") from None


def _tool_choice(choice: Any, tools: tuple[Tool, ...], names: dict[str, ToolName],
                 parallel: bool | None) -> ToolChoice:
    parallel = True if parallel is None else parallel
    if choice is None or choice == "auto":
        return ToolChoice(ToolChoiceMode.AUTO if tools else ToolChoiceMode.NONE, parallel=parallel)
    if choice == "none":
        return ToolChoice(ToolChoiceMode.NONE, parallel=parallel)
    if not tools:
        raise InvalidRequest("tool_choice requires tools.", param="tool_choice")
    if choice == "required":
        return ToolChoice(ToolChoiceMode.REQUIRED, parallel=parallel)
    if isinstance(choice, s.ToolChoiceAllowed):
        # The allowed subset is not a separate grammar here: "required" still forces a call (of any tool).
        mode = ToolChoiceMode.REQUIRED if choice.mode == "required" else ToolChoiceMode.AUTO
        return ToolChoice(mode, parallel=parallel)
    wanted = [flat for flat, name in names.items()
              if name.name == choice.name and name.kind == type(choice).__struct_config__.tag]
    if not wanted:
        kind = type(choice).__struct_config__.tag
        other = [name.kind for name in names.values() if name.name == choice.name]
        why = f"which is a {other[0]} tool, not a {kind} one" if other else "which is not in tools"
        raise InvalidRequest(f"tool_choice names the {kind} tool {choice.name!r}, {why}.", param="tool_choice.name")
    return ToolChoice(ToolChoiceMode.NAMED, name=wanted[0], parallel=parallel)


def _tool_choice_out(choice: Any) -> Any:
    if choice is None:
        return "auto"
    return choice if isinstance(choice, str) else msgspec.to_builtins(choice)


def _response_format(text: s.TextConfig | None) -> ResponseFormat:
    fmt = text.format if text is not None else None
    match fmt:
        case s.JsonSchemaFormat():
            if fmt.schema is not None and not isinstance(fmt.schema, dict):
                raise InvalidRequest("text.format.schema must be a JSON schema object.", param="text.format.schema")
            if fmt.schema is not None:
                check_output_schema(fmt.schema, "text.format.schema")
            return ResponseFormat("json_schema", fmt.schema, bool(fmt.strict), source="text.format.schema")
        case s.JsonObjectFormat():
            return ResponseFormat("json_object")
    return ResponseFormat()


def text_config_out(text: s.TextConfig | None) -> dict[str, Any]:
    """The `text` field echoed on the response."""
    if text is None or text.format is None:
        return {"format": {"type": "text"}}
    return {"format": msgspec.to_builtins(text.format)}

