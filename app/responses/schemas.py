"""Responses API wire schemas (msgspec), as the openai SDK's `types/responses` spell them.

Requests are decoded tolerantly: unknown fields are ignored, and input items and tools are kept as raw JSON
until conversion (app/responses/convert.py), which reads each by its `type` and drops or refuses the types this
server does not run. Output items, content parts and stream events are tagged structs on `type`; every stream
event carries a `sequence_number`, set as the event is framed (app/responses/render.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from app.openai.schemas import ReasoningEffort, Seed  # OpenAI's value sets, one definition for both APIs

# -- requests -------------------------------------------------------------------------------------------


class Head(Struct):
    """An item's or tool's `type` alone (absent on the short message form `{"role", "content"}`)."""

    type: str | None = None


class InputText(Struct, tag="input_text", tag_field="type"):
    text: str


class OutputTextIn(Struct, tag="output_text", tag_field="type"):
    text: str


class RefusalIn(Struct, tag="refusal", tag_field="type"):
    refusal: str


class InputImage(Struct, tag="input_image", tag_field="type"):
    image_url: str | None = None


class InputFile(Struct, tag="input_file", tag_field="type"):
    filename: str | None = None


class InputAudio(Struct, tag="input_audio", tag_field="type"):
    pass


ContentIn = InputText | OutputTextIn | RefusalIn | InputImage | InputFile | InputAudio


class MessageItem(Struct, kw_only=True):
    """A message: `{"role", "content"}` with or without `"type": "message"`; assistant messages as the API
    returned them (`output_text` parts, an `id`, a `status`) are messages too."""

    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentIn]
    type: Literal["message"] = "message"
    id: str | None = None
    status: str | None = None
    phase: str | None = None


class FunctionCallItem(Struct, tag="function_call", tag_field="type", kw_only=True):
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    namespace: str | None = None
    status: str | None = None


class FunctionCallOutputItem(Struct, tag="function_call_output", tag_field="type", kw_only=True):
    call_id: str
    output: str | list[ContentIn]
    id: str | None = None
    status: str | None = None


class CustomToolCallItem(Struct, tag="custom_tool_call", tag_field="type", kw_only=True):
    call_id: str
    name: str
    input: str
    id: str | None = None
    namespace: str | None = None


class CustomToolCallOutputItem(Struct, tag="custom_tool_call_output", tag_field="type", kw_only=True):
    call_id: str
    output: str | list[ContentIn]
    id: str | None = None


class SummaryText(Struct, tag="summary_text", tag_field="type"):
    text: str


class ReasoningText(Struct, tag="reasoning_text", tag_field="type"):
    text: str


class ReasoningItem(Struct, tag="reasoning", tag_field="type", kw_only=True):
    summary: list[SummaryText] = []
    content: list[ReasoningText] | None = None
    id: str | None = None
    encrypted_content: str | None = None  # another server's: nothing a local model can read


class ItemReference(Struct, tag="item_reference", tag_field="type"):
    id: str


InputItem = FunctionCallItem | FunctionCallOutputItem | CustomToolCallItem | CustomToolCallOutputItem | ReasoningItem \
    | ItemReference
KNOWN_ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "custom_tool_call",
                              "custom_tool_call_output", "reasoning", "item_reference"})


class FunctionTool(Struct, tag="function", tag_field="type", kw_only=True):
    name: str
    parameters: Any = None
    description: str | None = None
    strict: bool | None = None


class GrammarFormat(Struct, tag="grammar", tag_field="type"):
    definition: str
    syntax: Literal["lark", "regex"]


class TextFormatIn(Struct, tag="text", tag_field="type"):
    pass


class CustomTool(Struct, tag="custom", tag_field="type", kw_only=True):
    """A freeform tool: its input is text, shaped by `format` (a Lark or regex grammar) when given."""

    name: str
    description: str | None = None
    format: GrammarFormat | TextFormatIn | None = None


class NamespaceTool(Struct, tag="namespace", tag_field="type", kw_only=True):
    """A group of tools (Codex's `multi_agent_v1`); calls name the namespace beside the tool."""

    name: str
    tools: list[msgspec.Raw]
    description: str | None = None


ToolIn = FunctionTool | CustomTool | NamespaceTool
CLIENT_TOOL_TYPES = frozenset({"function", "custom", "namespace"})


class ToolChoiceFunction(Struct, tag="function", tag_field="type"):
    name: str


class ToolChoiceCustom(Struct, tag="custom", tag_field="type"):
    name: str


class ToolChoiceAllowed(Struct, tag="allowed_tools", tag_field="type"):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


ToolChoiceIn = Literal["none", "auto", "required"] | ToolChoiceFunction | ToolChoiceCustom | ToolChoiceAllowed


class JsonSchemaFormat(Struct, tag="json_schema", tag_field="type", kw_only=True):
    name: str = "response"
    schema: Any = None
    description: str | None = None
    strict: bool | None = None


class JsonObjectFormat(Struct, tag="json_object", tag_field="type"):
    pass


TextFormat = TextFormatIn | JsonSchemaFormat | JsonObjectFormat


class TextConfig(Struct, omit_defaults=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class ReasoningConfig(Struct, omit_defaults=True):
    effort: ReasoningEffort | None = None  # as chat completions' reasoning_effort
    summary: str | None = None


Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]


class ResponsesRequest(Struct, kw_only=True):
    """POST /v1/responses. Accepted and ignored: prompt_cache_key, safety_identifier, service_tier,
    client_metadata, stream_options, truncation ("disabled" is what happens; "auto" is treated alike)."""

    model: str
    input: str | list[msgspec.Raw] = []
    instructions: str | None = None
    tools: list[msgspec.Raw] | None = None
    tool_choice: ToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    truncation: str | None = None
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None
    max_tool_calls: Annotated[int, Meta(ge=1)] | None = None
    include: list[str] | None = None
    seed: Seed | None = None  # not OpenAI's; as the chat API's, for reproducible tests


# -- responses ------------------------------------------------------------------------------------------


class TopLogprob(Struct):
    token: str
    bytes: list[int]
    logprob: float


class TokenLogprob(Struct):
    token: str
    bytes: list[int]
    logprob: float
    top_logprobs: list[TopLogprob]


class OutputText(Struct, tag="output_text", tag_field="type"):
    text: str
    annotations: list[Any] = []
    logprobs: list[TokenLogprob] = []


class OutputMessage(Struct, tag="message", tag_field="type"):
    id: str
    status: str
    content: list[OutputText]
    role: str = "assistant"


class FunctionCallOut(Struct, tag="function_call", tag_field="type", omit_defaults=True):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str
    namespace: str | UnsetType = UNSET


class CustomToolCallOut(Struct, tag="custom_tool_call", tag_field="type", omit_defaults=True):
    id: str
    call_id: str
    name: str
    input: str
    status: str
    namespace: str | UnsetType = UNSET


class ReasoningOut(Struct, tag="reasoning", tag_field="type", omit_defaults=True):
    id: str
    summary: list[SummaryText]
    content: list[ReasoningText] | UnsetType = UNSET
    status: str | UnsetType = UNSET


OutputItem = OutputMessage | FunctionCallOut | CustomToolCallOut | ReasoningOut


class InputTokensDetails(Struct):
    cached_tokens: int = 0


class OutputTokensDetails(Struct):
    reasoning_tokens: int = 0


class UsageOut(Struct):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens_details: OutputTokensDetails


class ErrorOut(Struct):
    code: str
    message: str


class IncompleteDetails(Struct):
    reason: str


class ResponseObject(Struct, kw_only=True):
    id: str
    created_at: int
    model: str
    status: Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]
    output: list[OutputItem] = []
    object: str = "response"
    error: ErrorOut | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = {}
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: ReasoningConfig | None = None
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] = msgspec.field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: Any = "auto"
    tools: list[Any] = []
    top_logprobs: int | None = None
    top_p: float | None = None
    truncation: str = "disabled"
    usage: UsageOut | None = None
    user: str | None = None
    background: bool = False
    completed_at: int | None = None


class DeletedOut(Struct):
    id: str
    object: str = "response"
    deleted: bool = True


class InputItemList(Struct):
    data: list[Any]
    first_id: str | None
    last_id: str | None
    has_more: bool = False
    object: str = "list"


# -- stream events --------------------------------------------------------------------------------------


class Event(Struct, tag_field="type", kw_only=True):
    """A stream event; `sequence_number` counts from 0 over one stream."""

    sequence_number: int = 0


class _ResponseEvent(Event):
    response: ResponseObject


class ResponseCreated(_ResponseEvent, tag="response.created"):
    pass


class ResponseInProgress(_ResponseEvent, tag="response.in_progress"):
    pass


class ResponseCompleted(_ResponseEvent, tag="response.completed"):
    pass


class ResponseIncomplete(_ResponseEvent, tag="response.incomplete"):
    pass


class ResponseFailed(_ResponseEvent, tag="response.failed"):
    pass


class OutputItemAdded(Event, tag="response.output_item.added"):
    output_index: int
    item: OutputItem


class OutputItemDone(Event, tag="response.output_item.done"):
    output_index: int
    item: OutputItem


class _ItemEvent(Event):
    """An event about one output item's content."""

    item_id: str
    output_index: int


class _PartEvent(_ItemEvent):
    """An event about one content part of a message or reasoning item."""

    content_index: int


class ContentPartAdded(_PartEvent, tag="response.content_part.added"):
    part: OutputText


class ContentPartDone(_PartEvent, tag="response.content_part.done"):
    part: OutputText


class OutputTextDelta(_PartEvent, tag="response.output_text.delta"):
    delta: str
    logprobs: list[TokenLogprob] = []


class OutputTextDone(_PartEvent, tag="response.output_text.done"):
    text: str
    logprobs: list[TokenLogprob] = []


class ReasoningTextDelta(_PartEvent, tag="response.reasoning_text.delta"):
    delta: str


class ReasoningTextDone(_PartEvent, tag="response.reasoning_text.done"):
    text: str


class FunctionCallArgumentsDelta(_ItemEvent, tag="response.function_call_arguments.delta"):
    delta: str


class FunctionCallArgumentsDone(_ItemEvent, tag="response.function_call_arguments.done"):
    arguments: str
    name: str


class CustomToolCallInputDelta(_ItemEvent, tag="response.custom_tool_call_input.delta"):
    delta: str


class CustomToolCallInputDone(_ItemEvent, tag="response.custom_tool_call_input.done"):
    input: str


class ErrorEvent(Event, tag="error"):
    message: str
    code: str | None = None
    param: str | None = None


StreamEvent = (
    ResponseCreated | ResponseInProgress | ResponseCompleted | ResponseIncomplete | ResponseFailed | OutputItemAdded
    | OutputItemDone | ContentPartAdded | ContentPartDone | OutputTextDelta | OutputTextDone
    | FunctionCallArgumentsDelta | FunctionCallArgumentsDone | CustomToolCallInputDelta | CustomToolCallInputDone
    | ErrorEvent
)


# -- what the store keeps of a response ------------------------------------------------------------------


class StoredResponse(Struct, kw_only=True):
    """One stored turn's body: the response as GET returns it, and the input items this request added (the
    history before them is the previous turns'). Input items are kept as the client sent them."""

    response: ResponseObject
    input: list[msgspec.Raw]


responses_decoder = msgspec.json.Decoder(ResponsesRequest)
head_decoder = msgspec.json.Decoder(Head)
message_decoder = msgspec.json.Decoder(MessageItem)
item_decoder = msgspec.json.Decoder(InputItem)
tool_decoder = msgspec.json.Decoder(ToolIn)
stored_decoder = msgspec.json.Decoder(StoredResponse)
