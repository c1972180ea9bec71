"""Anthropic Messages wire schemas (msgspec).

Requests are decoded tolerantly: unknown fields are ignored, and content blocks are kept as raw JSON until
conversion, where blocks of a type this server does not know are dropped (new ones appear in every release).
Response and stream-event structs are tagged on `type`, so the SSE `event:` line is always the struct's tag.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from app.anthropic.context_management import ContextManagement

# -- requests: content blocks ---------------------------------------------------------------------------


class TextBlock(Struct, tag="text", tag_field="type"):
    text: str


class ImageBlock(Struct, tag="image", tag_field="type"):
    source: Any = None


class DocumentBlock(Struct, tag="document", tag_field="type"):
    source: msgspec.Raw  # read by its `type` (SourceHead), then as the typed source below, if it is one we read
    title: str | None = None


class SourceHead(Struct):
    type: str


class TextSource(Struct, tag="text", tag_field="type"):
    data: str
    media_type: str = "text/plain"


class ContentSource(Struct, tag="content", tag_field="type"):
    content: str | list[msgspec.Raw]  # text (and image) blocks


DocumentSource = TextSource | ContentSource


class ToolUseBlock(Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any] = {}


class ToolResultBlock(Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[msgspec.Raw] = ""
    is_error: bool = False


class ToolReferenceBlock(Struct, tag="tool_reference", tag_field="type"):
    """In tool_result content (Claude Code's ToolSearch): the named tool is now loaded."""

    tool_name: str


class ThinkingBlock(Struct, tag="thinking", tag_field="type"):
    thinking: str = ""
    signature: str = ""


class RedactedThinkingBlock(Struct, tag="redacted_thinking", tag_field="type"):
    data: str = ""


InputBlock = (
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ToolReferenceBlock | ThinkingBlock
    | RedactedThinkingBlock
)
KNOWN_BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result", "tool_reference", "thinking",
                               "redacted_thinking"})


class BlockHead(Struct):
    """Just a block's type: read first, so unknown types can be skipped rather than rejected."""

    type: str


# -- requests: the rest ---------------------------------------------------------------------------------


class MessageIn(Struct):
    role: Literal["user", "assistant", "system"]
    content: str | list[msgspec.Raw]


class ToolIn(Struct):
    name: str
    description: str = ""
    input_schema: Any = None
    type: str | None = None  # absent or "custom" for client tools; server tools name their version
    strict: bool | None = None


class ToolChoiceAuto(Struct, tag="auto", tag_field="type"):
    disable_parallel_tool_use: bool = False


class ToolChoiceAny(Struct, tag="any", tag_field="type"):
    disable_parallel_tool_use: bool = False


class ToolChoiceTool(Struct, tag="tool", tag_field="type"):
    name: str
    disable_parallel_tool_use: bool = False


class ToolChoiceNone(Struct, tag="none", tag_field="type"):
    pass


ToolChoiceIn = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class OutputFormat(Struct):
    """Structured outputs: {"type": "json_schema", "schema": {...}}."""

    type: str = "json_schema"
    schema: Any = None


class OutputConfig(Struct):
    effort: str | None = None
    format: OutputFormat | None = None


Temperature = Annotated[float, Meta(ge=0.0, le=1.0)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]


class ThreadIn(Struct):
    """Server-held conversation state (the SDK's `thread`): `create` or `continue` with previous_message_id."""

    type: str
    previous_message_id: str | None = None


class ThinkingEnabled(Struct, tag="enabled", tag_field="type"):
    budget_tokens: Annotated[int, Meta(ge=0)]


class ThinkingAdaptive(Struct, tag="adaptive", tag_field="type"):
    pass


class ThinkingDisabled(Struct, tag="disabled", tag_field="type"):
    pass


ThinkingIn = ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled


class CountTokensRequest(Struct, kw_only=True):
    """What /v1/messages/count_tokens takes: a Messages request without the generation settings.
    metadata, cache_control, service_tier... are accepted and ignored; `thinking` switches the template's
    thinking on or off, so it counts here too."""

    model: str
    messages: list[MessageIn]
    system: str | list[TextBlock] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    output_config: OutputConfig | None = None
    output_format: OutputFormat | None = None  # the structured-outputs beta's spelling
    context_management: ContextManagement | None = None
    thinking: ThinkingIn | None = None


class MessagesRequest(CountTokensRequest, kw_only=True):
    max_tokens: Annotated[int, Meta(ge=1)]
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: Annotated[int, Meta(ge=0, le=2**31 - 1)] | None = None  # int32, as engines keep it
    stop_sequences: list[str] | None = None
    stream: bool = False
    thread: ThreadIn | None = None


# -- responses ------------------------------------------------------------------------------------------


class TextOut(Struct, tag="text", tag_field="type"):
    text: str


class ToolUseOut(Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


class ThinkingOut(Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str  # our MAC of the text (app/anthropic/signature.py)


ContentOut = TextOut | ToolUseOut | ThinkingOut


class UsageOut(Struct):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class MessageOut(Struct, tag="message", tag_field="type"):
    id: str
    model: str
    content: list[ContentOut]
    stop_reason: str | None
    stop_sequence: str | None
    usage: UsageOut
    role: str = "assistant"
    context_management: dict[str, Any] | UnsetType = UNSET  # {"applied_edits": [...]} when edits were asked for


class CountTokensOut(Struct):
    input_tokens: int
    context_management: dict[str, Any] | UnsetType = UNSET  # {"original_input_tokens": N} when edits were asked for


# -- stream events --------------------------------------------------------------------------------------


class MessageStart(Struct, tag="message_start", tag_field="type"):
    message: MessageOut


class ContentBlockStart(Struct, tag="content_block_start", tag_field="type"):
    index: int
    content_block: ContentOut


class TextDeltaOut(Struct, tag="text_delta", tag_field="type"):
    text: str


class InputJsonDelta(Struct, tag="input_json_delta", tag_field="type"):
    partial_json: str


class ThinkingDeltaOut(Struct, tag="thinking_delta", tag_field="type"):
    thinking: str


class SignatureDeltaOut(Struct, tag="signature_delta", tag_field="type"):
    signature: str


class ContentBlockDelta(Struct, tag="content_block_delta", tag_field="type"):
    index: int
    delta: TextDeltaOut | InputJsonDelta | ThinkingDeltaOut | SignatureDeltaOut


class ContentBlockStop(Struct, tag="content_block_stop", tag_field="type"):
    index: int


class MessageDeltaBody(Struct):
    stop_reason: str | None
    stop_sequence: str | None


class MessageDelta(Struct, tag="message_delta", tag_field="type"):
    delta: MessageDeltaBody
    usage: UsageOut  # cumulative: the final input split, cache counts and output tokens
    context_management: dict[str, Any] | UnsetType = UNSET


class MessageStop(Struct, tag="message_stop", tag_field="type"):
    pass


class Ping(Struct, tag="ping", tag_field="type"):
    pass


class ErrorDetail(Struct, omit_defaults=True):
    type: str
    message: str
    details: dict[str, Any] | UnsetType = UNSET  # e.g. {"error_code": "thread_not_found"}, read by the SDK


class ErrorOut(Struct, tag="error", tag_field="type", omit_defaults=True):
    error: ErrorDetail
    request_id: str | UnsetType = UNSET  # in error responses; in-band stream errors carry it in the header


StreamEvent = (
    MessageStart | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop | Ping
    | ErrorOut
)


# -- models ---------------------------------------------------------------------------------------------


class ModelOut(Struct, tag="model", tag_field="type"):
    id: str
    display_name: str
    created_at: str  # RFC 3339
    lifecycle: str = "active"
    max_input_tokens: int | None = None  # the context window, once the model is loaded
    max_tokens: int | None = None


class ModelListOut(Struct):
    data: list[ModelOut]
    first_id: str | None
    last_id: str | None
    has_more: bool = False


messages_decoder = msgspec.json.Decoder(MessagesRequest)
count_tokens_decoder = msgspec.json.Decoder(CountTokensRequest)
block_head_decoder = msgspec.json.Decoder(BlockHead)
block_decoder = msgspec.json.Decoder(InputBlock)
source_head_decoder = msgspec.json.Decoder(SourceHead)
document_source_decoder = msgspec.json.Decoder(DocumentSource)
