"""The neutral core: what a dialect asks for, and what an engine emits.

Both API dialects (OpenAI, Anthropic) convert into `ChatRequest`/`CompletionRequest` and render from the
events below. Nothing here knows about HTTP or about any engine's wire shapes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from runtime.errors import InvalidRequest

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the assistant made, as it appears in conversation history."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # role == "tool" only
    name: str | None = None  # the tool's name for role == "tool", when known
    reasoning: str | None = None  # prior thinking, kept where the template can render it


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of type object
    strict: bool = False
    # A freeform tool (the Responses API's `custom`): its one string argument `input` follows this grammar
    # (xgrammar EBNF for the unescaped text; runtime/tools/freeform.py).
    freeform_grammar: str | None = None
    source: str = "tools"  # where the request held the schema (`tools[3].input_schema`), for errors


class ToolChoiceMode(enum.Enum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    NAMED = "named"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    name: str | None = None  # mode == NAMED
    parallel: bool = True


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    max_new_tokens: int | None = None  # None = up to the context window
    # End-of-sequence and stop_token_ids cannot end the output before this many tokens (vLLM's min_tokens,
    # SGLang's min_new_tokens); stop strings still can, as on SGLang.
    min_new_tokens: int = 0
    # Stop strings: matched on the output's text by the output pipeline (runtime/output.py), never by an engine,
    # so every request counts its tokens alike; stop_token_ids are the engine's.
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    # vLLM's allowed_token_ids: when set, only these tokens may be sampled (within what a grammar allows: where
    # the two share no token, the grammar's choice stands).
    allowed_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    skip_special_tokens: bool = True  # False where a tool format's markers are special tokens
    # Log-probabilities of each generated token and of this many most likely alternatives (0-20); None = off.
    logprobs: int | None = None
    # vLLM's logprob_token_ids: with logprobs on, the alternatives are these tokens (and the sampled one)
    # instead of the most likely ones.
    logprob_token_ids: tuple[int, ...] = ()
    # vLLM's return_tokens_as_token_ids: logprob entries name their token "token_id:<id>" (the output
    # pipeline's, like `stop`; engines never read it).
    tokens_as_ids: bool = False
    # (token id, bias) pairs added to the logits after penalties and the grammar's mask (OpenAI's logit_bias).
    logit_bias: tuple[tuple[int, float], ...] = ()
    return_token_ids: bool = False  # also TokenIds events: the generated tokens' ids (vLLM's return_token_ids)
    # Fields the client left unset, for the server's sampling defaults to fill (runtime/sampling_defaults.py);
    # empty once GenerationService has applied them, so engines never read it.
    unset: frozenset[str] = frozenset()

    @property
    def penalised(self) -> bool:
        return bool(self.frequency_penalty or self.presence_penalty or self.repetition_penalty != 1.0)

    @property
    def greedy(self) -> bool:
        # Below 1e-5, dividing logits by the temperature overflows; it is greedy in all but name.
        return self.temperature < 1e-5 or self.top_k == 1 or self.top_p == 0.0


class ConstraintKind(enum.Enum):
    JSON_SCHEMA = "json_schema"
    STRUCTURAL_TAG = "structural_tag"
    EBNF = "ebnf"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class Constraint:
    """A grammar both engines understand: the text is exactly what SGLang takes as the sampling parameter
    of the same name (JSON text for json_schema and structural_tag), and what xgrammar compiles."""

    kind: ConstraintKind
    text: str


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """What the text of the output must be: anything, a JSON document (of a schema), or what a grammar the
    request gave accepts (a regex, EBNF, a list of choices or a structural tag: runtime/constraints.py)."""

    type: Literal["text", "json_object", "json_schema", "grammar"] = "text"
    schema: dict[str, Any] | None = None
    strict: bool = False
    grammar: Constraint | None = None  # type == "grammar"
    source: str = "response_format"  # where the request held the schema, for errors


@dataclass(frozen=True, slots=True)
class ReasoningOptions:
    """What the client asked of the model's thinking (OpenAI's reasoning_effort, a thinking switch in its
    chat_template_kwargs, Anthropic's `thinking`). The reasoning format maps these onto the family's template
    switches (the client's own chat_template_kwargs, in TemplateOptions, win over them)."""

    enabled: bool | None = None  # None: the model's default
    effort: str | None = None  # OpenAI's reasoning_effort (gpt-oss's template reads it)
    budget_tokens: int | None = None  # at most this many thinking tokens, enforced by the engine


@dataclass(frozen=True, slots=True)
class TemplateOptions:
    """How the chat template renders the conversation (vLLM's and SGLang's chat request extensions)."""

    add_generation_prompt: bool = True  # open an assistant turn after the messages
    continue_final_message: bool = False  # leave the last message open: the output continues its text
    kwargs: dict[str, Any] = field(default_factory=dict)  # chat_template_kwargs: more variables for the template


@dataclass(frozen=True, slots=True)
class PromptTruncation:
    """vLLM's truncate_prompt_tokens: keep this many of the prompt's tokens (-1: as many as the window allows with
    one token of room for output), the last ones ("left": cut from the start, vLLM's default for generation) or
    the first ("right")."""

    keep: int
    side: Literal["left", "right"] = "left"


@dataclass(frozen=True, slots=True)
class FieldNames:
    """The dialect's names for the prompt and the output cap, which window errors name as their `param`."""

    prompt: str = "messages"
    max_tokens: str = "max_tokens"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[Message, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    template: TemplateOptions = field(default_factory=TemplateOptions)
    # Also the prompt's tokens' log-probabilities, with this many alternatives each (vLLM's prompt_logprobs).
    prompt_logprobs: int | None = None
    # Clamp max_new_tokens to what the window leaves instead of rejecting (Anthropic's behaviour).
    clamp_max_tokens: bool = False
    reasoning: ReasoningOptions = field(default_factory=ReasoningOptions)
    truncation: PromptTruncation | None = None  # of the rendered prompt's tokens
    fields: FieldNames = field(default_factory=FieldNames)

    def __post_init__(self) -> None:
        """The checks on tools every dialect needs, made once here: unique names (calls are routed by name)
        and a named choice that names one of them."""
        names: set[str] = set()
        for tool in self.tools:
            if tool.name in names:
                raise InvalidRequest(f"Tool names must be unique; {tool.name!r} appears twice.", param="tools")
            names.add(tool.name)
        choice = self.tool_choice
        if choice.mode is ToolChoiceMode.NAMED and choice.name not in names:
            raise InvalidRequest(f"tool_choice names {choice.name!r}, which is not in tools.", param="tool_choice")


@dataclass(frozen=True, slots=True)
class MarkerSpelling:
    """The thinking markers as text, and the bytes of every token that can spell part of one or is only
    whitespace (runtime/reasoning/markers.py builds it): an engine finds the markers in the output's text
    whichever tokens the model spelled them with. A token not in `token_bytes` holds no part of a marker."""

    start: bytes
    end: bytes
    token_bytes: Mapping[int, bytes]
    key: str  # a digest of the above, by which SGLang's processor caches the table


@dataclass(frozen=True, slots=True)
class ThinkingControl:
    """The thinking region, for an engine to count its tokens and enforce a budget (runtime/reasoning/budget.py
    is the one implementation both engines run).

    The region is open from the start when the prompt opened it; otherwise it opens when the start marker's
    text comes first in the output (after whitespace only). It closes at the end marker's text. The markers
    are found in the output's text (`markers`), so a model that spells one with other tokens than the
    canonical ones is still seen to. Once `budget` tokens are spent inside, the engine forces `forced_ids`
    (which begin with the end marker's canonical tokens); with `force_open`, an output that does not open
    the region is made to, by forcing `start_ids` (the start marker's canonical tokens) first."""

    start_ids: tuple[int, ...]
    forced_ids: tuple[int, ...]
    markers: MarkerSpelling
    starts_inside: bool = False
    budget: int | None = None
    force_open: bool = False


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """What an engine runs: token ids in, text out."""

    rid: str
    input_ids: tuple[int, ...]
    sampling: SamplingParams
    constraint: Constraint | None = None
    # Also the prompt tokens' log-probabilities (with sampling.logprobs alternatives each): a PromptLogprobs
    # event before any output. For scoring (completions with echo); max_new_tokens may then be 0.
    prompt_logprobs: bool = False
    prompt_top_logprobs: int | None = None  # alternatives per prompt position; None: as sampling.logprobs
    thinking: ThinkingControl | None = None  # a reasoning model's thinking region: counted, maybe budgeted
    # The LoRA adapter (its name, one of EngineConfig.lora_adapters) to run with; None: the base model. Outputs
    # of different adapters never share cached keys/values.
    adapter: str | None = None
    # Where the output pipeline matches stop strings: text that several tokens brought at once is split into a
    # TextDelta per token where the engine can (SGLang's chunks; the CPU engine's deltas are one token's
    # anyway), so a stopped output's usage ends at the very token.
    text_per_token: bool = False


class FinishReason(enum.Enum):
    STOP = "stop"  # EOS or a stop string / stop token
    LENGTH = "length"
    ABORT = "abort"
    TOOL_CALLS = "tool_calls"  # set above the engine, when the output was one or more complete calls


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0  # of completion_tokens, those inside the thinking region (markers excluded)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Output text. From an engine, `tokens` is how many generated tokens this text completes: those since the
    engine's previous TextDelta (a token whose text is held back, half a character, counts in the delta that
    shows it), so a stop string matched in this text ends the output after exactly that many more tokens. The
    output pipeline's TextDeltas leave it 0: text outside calls is no longer tied to tokens."""

    text: str
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One token and its log-probability under the distribution it was sampled from: after penalties, the
    grammar's mask and the temperature, before top-k/top-p/min-p cut it down (SGLang's definition)."""

    token: str  # its text on its own (an incomplete UTF-8 character shows as U+FFFD; `data` has the bytes)
    data: bytes
    logprob: float
    top: tuple[TokenLogprob, ...] = ()  # the most likely tokens at this position, most likely first
    id: int = -1  # its token id

    @classmethod
    def of(cls, vocab: Sequence[bytes], token_id: int, logprob: float,
           top: tuple[TokenLogprob, ...] = ()) -> TokenLogprob:
        """`vocab`: each token's bytes (xgrammar's decoded vocabulary, so both engines name tokens alike)."""
        data = vocab[token_id] if 0 <= token_id < len(vocab) else b""
        return cls(data.decode("utf-8", errors="replace"), data, max(logprob, LOGPROB_FLOOR), top, token_id)


LOGPROB_FLOOR = -9999.0  # what a forbidden token's -inf is reported as (JSON has no infinity; vLLM's value)


@dataclass(frozen=True, slots=True)
class Logprobs:
    """The log-probabilities of tokens just generated. Sent before the text they make, which may be held back
    (an unfinished character, a possible stop string); one entry per generated token, end-of-turn included."""

    tokens: tuple[TokenLogprob, ...]


@dataclass(frozen=True, slots=True)
class PromptLogprobs:
    """The prompt's tokens, each with its log-probability given the tokens before it (the model's own
    distribution: no temperature, penalties or grammar apply to a prompt). The first token has none: its entry
    names it, with logprob 0.0 and no alternatives, and the API reports null."""

    tokens: tuple[TokenLogprob, ...]


@dataclass(frozen=True, slots=True)
class TokenIds:
    """The ids of tokens just generated (asked for with SamplingParams.return_token_ids). Like Logprobs, sent no
    later than the text they make; every generated token's, end-of-turn included."""

    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    reason: FinishReason
    usage: Usage
    matched_stop: str | None = None  # the stop token (of stop_token_ids, decoded) that ended generation, if any


EngineEvent = TextDelta | Logprobs | PromptLogprobs | TokenIds | Finished


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Thinking text, split from the answer by the reasoning format. All of a response's reasoning comes
    before its answer text and calls, except where a family interleaves them (harmony's channels)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """A tool call begins: its position among this response's calls, a fresh id, and the tool's name."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgs:
    """A fragment of a call's arguments JSON; a call's fragments join into its complete arguments."""

    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class ChatFinished:
    reason: FinishReason
    usage: Usage
    matched_stop: str | None = None  # the stop string (matched by the output pipeline) or stop token that ended it
    tool_calls: int = 0  # how many calls this response made

    @property
    def called_tools(self) -> bool:
        return self.tool_calls > 0


ChatEvent = (TextDelta | ReasoningDelta | Logprobs | PromptLogprobs | TokenIds | ToolCallStart | ToolCallArgs
             | ChatFinished)
