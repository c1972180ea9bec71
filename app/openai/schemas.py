"""OpenAI wire schemas (msgspec). Unknown request fields are ignored, as OpenAI does; new fields get
defaults. Response fields OpenAI always sends are always present (nulls included)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

# -- requests -------------------------------------------------------------------------------------------


class TextPart(Struct, tag="text", tag_field="type"):
    text: str


class ImageUrlPart(Struct, tag="image_url", tag_field="type"):
    image_url: Any = None


class InputAudioPart(Struct, tag="input_audio", tag_field="type"):
    input_audio: Any = None


class FilePart(Struct, tag="file", tag_field="type"):
    file: Any = None


ContentPart = TextPart | ImageUrlPart | InputAudioPart | FilePart


class FunctionCall(Struct):
    name: str
    arguments: str = "{}"


class ToolCallIn(Struct):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class SystemMessage(Struct, tag="system", tag_field="role"):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(Struct, tag="developer", tag_field="role"):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(Struct, tag="user", tag_field="role"):
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(Struct, tag="assistant", tag_field="role"):
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    reasoning_content: str | None = None  # past thinking (SGLang's name; vLLM's `reasoning` too)
    reasoning: str | None = None
    name: str | None = None


class ToolMessage(Struct, tag="tool", tag_field="role"):
    content: str | list[TextPart]
    tool_call_id: str


ChatMessageIn = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


class FunctionDef(Struct):
    name: str
    description: str | None = None
    parameters: Any = None
    strict: bool | None = None


class ToolDef(Struct):
    function: FunctionDef
    type: Literal["function"] = "function"


class NamedFunction(Struct):
    name: str


class NamedToolChoice(Struct):
    function: NamedFunction
    type: Literal["function"] = "function"


class JsonSchemaSpec(Struct):
    name: str = "response"
    schema: Any = None
    strict: bool | None = None
    description: str | None = None


class TextFormat(Struct, tag="text", tag_field="type"):
    pass


class JsonObjectFormat(Struct, tag="json_object", tag_field="type"):
    pass


class JsonSchemaFormat(Struct, tag="json_schema", tag_field="type"):
    json_schema: JsonSchemaSpec


class StructuralTagFormat(Struct, tag="structural_tag", tag_field="type"):
    """vLLM's and SGLang's: an xgrammar structural tag, `format` (newer) or `structures` + `triggers` (older)."""

    format: Any = None
    structures: Any = None
    triggers: Any = None


ResponseFormatIn = TextFormat | JsonObjectFormat | JsonSchemaFormat | StructuralTagFormat


class StructuredOutputs(Struct):
    """vLLM's `structured_outputs`: one of these constrains the output (its other options are ignored)."""

    json: Any = None  # a JSON schema, as an object or as JSON text
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None  # EBNF, as xgrammar reads it
    json_object: bool | None = None
    structural_tag: Any = None  # JSON text or an object


class StreamOptions(Struct):
    include_usage: bool = False
    continuous_usage_stats: bool = False  # vLLM's: with include_usage, every chunk carries the usage so far


Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
# SGLang accepts [0, 2], vLLM (0, inf). At 0.01 a repeated token's logit is already multiplied by 100, which
# decides the draw; smaller values only overflow (float16 logits above 65504, float32 ones below ~1e-37),
# giving engines non-finite rows to sample from. Above 2: SGLang refuses it.
RepetitionPenalty = Annotated[float, Meta(ge=0.01, le=2.0)]
# A top_k beyond the vocabulary is the same as none; bounded so it fits the int32 tensors engines keep it in
# (SGLang's SamplingBatchInfo.top_ks).
TopK = Annotated[int, Meta(ge=-1, le=2**31 - 1)]
PositiveInt = Annotated[int, Meta(ge=1)]
# vLLM's bounds (torch.long); what both engines can hold: the CPU engine's torch.Generator takes [-2^63, 2^64),
# SGLang keeps sampling seeds in an int64 tensor. With n > 1, choice i uses seed + i: checked on conversion.
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
Seed = Annotated[int, Meta(ge=SEED_MIN, le=SEED_MAX)]


# OpenAI's values (its SDK's ReasoningEffort): "none" and "minimal" turn thinking off, the others on.
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class SamplingFields(Struct):
    """Fields shared by chat and completions: sampling and output constraints (OpenAI's plus vLLM/SGLang's
    common extensions)."""

    model: str
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    repetition_penalty: RepetitionPenalty | None = None
    seed: Seed | None = None
    stop: str | list[str] | None = None
    max_tokens: PositiveInt | None = None
    n: Annotated[int, Meta(ge=1, le=16)] = 1  # choices; each is a full generation, hence the cap
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | int | None = None  # chat: a boolean (with top_logprobs); completions: how many alternatives
    logit_bias: dict[str, float] | None = None  # token id (as a string) -> bias in [-100, 100]
    ignore_eos: bool = False
    return_token_ids: bool = False  # vLLM's: the prompt's and each choice's token ids in the answer
    prompt_logprobs: int | None = None  # vLLM's: the prompt's tokens' logprobs, with this many alternatives
    min_tokens: Annotated[int, Meta(ge=0)] = 0  # vLLM's: no end-of-sequence or stop token before this many
    stop_token_ids: list[Annotated[int, Meta(ge=0)]] | None = None  # vLLM's: these tokens end the output too
    allowed_token_ids: list[Annotated[int, Meta(ge=0)]] | None = None  # vLLM's: only these tokens may be generated
    # vLLM's: logprobs for exactly these tokens (and the sampled one) at each position, instead of the top ones
    logprob_token_ids: Annotated[list[Annotated[int, Meta(ge=0)]], Meta(max_length=128)] | None = None
    return_tokens_as_token_ids: bool = False  # vLLM's: logprobs name tokens "token_id:<id>"
    # vLLM's: keep only this many of the prompt's tokens (-1: what the window allows), the last ones unless
    # truncation_side is "right"
    truncate_prompt_tokens: Annotated[int, Meta(ge=-1)] | None = None
    truncation_side: Literal["left", "right"] | None = None
    skip_special_tokens: bool = True  # vLLM's: False keeps special tokens in the text
    # What the output must match (at most one of these and response_format; app/openai/constraints.py).
    response_format: ResponseFormatIn | None = None  # (completions too, as vLLM and SGLang take it)
    structured_outputs: StructuredOutputs | None = None  # vLLM's
    guided_json: Any = None  # vLLM's older spellings of structured_outputs
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    regex: str | None = None  # SGLang's
    ebnf: str | None = None
    json_schema: str | None = None  # SGLang's (completions), as JSON text


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessageIn] = []
    max_completion_tokens: PositiveInt | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    top_logprobs: int | None = None
    # vLLM's and SGLang's chat template controls (runtime.types.TemplateOptions)
    add_generation_prompt: bool | UnsetType = UNSET  # default true; false when continue_final_message
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None  # e.g. {"enable_thinking": false}
    # Reasoning models: OpenAI's effort ("none" and "minimal" turn thinking off) and vLLM's hard cap on
    # thinking tokens.
    reasoning_effort: ReasoningEffort | None = None
    thinking_token_budget: Annotated[int, Meta(ge=0)] | None = None


class CompletionRequest(SamplingFields):
    prompt: str | list[Any] = ""  # a string, token ids, or a one-element list of either (checked on conversion)
    max_tokens: Annotated[int, Meta(ge=0)] | None = None  # 0: score the prompt only (with echo)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None


# -- responses ------------------------------------------------------------------------------------------


class PromptTokensDetails(Struct):
    cached_tokens: int = 0


class CompletionTokensDetails(Struct):
    reasoning_tokens: int = 0


class UsageOut(Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails | UnsetType = UNSET  # chat only


class FunctionCallOut(Struct):
    name: str
    arguments: str


class ToolCallOut(Struct):
    id: str
    function: FunctionCallOut
    type: str = "function"


class ChatMessageOut(Struct):
    content: str | None
    role: str = "assistant"
    tool_calls: list[ToolCallOut] | UnsetType = UNSET
    # A reasoning model's thinking, under both names clients read (SGLang's and vLLM's older one; vLLM's new).
    reasoning_content: str | UnsetType = UNSET
    reasoning: str | UnsetType = UNSET


class TopLogprobOut(Struct):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprobOut(Struct):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprobOut]


class ChoiceLogprobs(Struct):
    content: list[TokenLogprobOut] | None
    refusal: list[TokenLogprobOut] | None = None


class CompletionLogprobs(Struct):
    """The legacy completions shape: parallel lists, alternatives as {token: logprob}."""

    tokens: list[str]
    token_logprobs: list[float | None]  # None for the first prompt token when echoed
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class PromptLogprobOut(Struct):
    """vLLM's prompt_logprobs entry for one token, keyed by its id."""

    logprob: float
    rank: int | None
    decoded_token: str


PromptLogprobsOut = list[dict[str, PromptLogprobOut] | None]  # the first prompt token has none


class ChatChoice(Struct):
    index: int
    message: ChatMessageOut
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None
    token_ids: list[int] | UnsetType = UNSET  # vLLM's return_token_ids


class ChatCompletion(Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut
    object: str = "chat.completion"
    system_fingerprint: str | None = None
    prompt_token_ids: list[int] | UnsetType = UNSET  # vLLM's return_token_ids
    prompt_logprobs: PromptLogprobsOut | None | UnsetType = UNSET  # vLLM's (null in a whole answer)


class FunctionDelta(Struct, omit_defaults=True):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET  # set explicitly (to "" on a call's first delta, as OpenAI sends)


class ToolCallDelta(Struct, omit_defaults=True):
    index: int
    id: str | UnsetType = UNSET
    type: str | UnsetType = UNSET
    function: FunctionDelta | UnsetType = UNSET


class ChatDelta(Struct, omit_defaults=True):
    role: str | UnsetType = UNSET
    content: str | None | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET
    reasoning: str | UnsetType = UNSET
    tool_calls: list[ToolCallDelta] | UnsetType = UNSET


class ChatChunkChoice(Struct):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    token_ids: list[int] | UnsetType = UNSET  # vLLM's return_token_ids: the tokens since the last chunk


class ChatCompletionChunk(Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChunkChoice]
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None
    usage: UsageOut | None | UnsetType = UNSET
    prompt_token_ids: list[int] | UnsetType = UNSET  # vLLM's return_token_ids: on the first chunk


class CompletionChoice(Struct):
    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None
    prompt_token_ids: list[int] | UnsetType = UNSET  # vLLM's return_token_ids (streamed: the first chunk)
    token_ids: list[int] | UnsetType = UNSET
    prompt_logprobs: PromptLogprobsOut | None | UnsetType = UNSET  # vLLM's (null in a whole answer)


class Completion(Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut | None | UnsetType = UNSET
    object: str = "text_completion"
    system_fingerprint: str | None = None


class ModelCard(Struct):
    id: str
    created: int
    owned_by: str
    object: str = "model"
    root: str | None = None  # vLLM's: the model's path; a LoRA adapter's path
    parent: str | None = None  # vLLM's: a LoRA adapter's base model
    max_model_len: int | None = None


class ModelList(Struct):
    data: list[ModelCard]
    object: str = "list"


class ErrorDetail(Struct):
    message: str
    type: str
    param: str | None
    code: str | int | None


class ErrorResponse(Struct):
    error: ErrorDetail


class TokenizeRequest(Struct):
    """vLLM's /tokenize: a text `prompt`, or chat `messages` (and `tools`) rendered as a chat request would be."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessageIn] | None = None
    tools: list[ToolDef] | None = None
    add_generation_prompt: bool | UnsetType = UNSET
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None
    add_special_tokens: bool = True  # for a prompt (a chat template writes its own special tokens)
    return_token_strs: bool = False


class TokenizeResponse(Struct):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(Struct):
    tokens: list[Annotated[int, Meta(ge=0)]]
    model: str | None = None


class DetokenizeResponse(Struct):
    prompt: str


chat_request_decoder = msgspec.json.Decoder(ChatCompletionRequest)
completion_request_decoder = msgspec.json.Decoder(CompletionRequest)
tokenize_request_decoder = msgspec.json.Decoder(TokenizeRequest)
detokenize_request_decoder = msgspec.json.Decoder(DetokenizeRequest)
