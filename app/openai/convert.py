"""OpenAI requests to the neutral ChatRequest (and completion prompts)."""

from __future__ import annotations

from typing import Any

from app.openai import schemas as s
from app.openai.constraints import output_format
from runtime.errors import InvalidRequest
from runtime.limits import check_tool_count
from runtime.templating import RESERVED_TEMPLATE_KWARGS
from runtime.tools.arguments import parse_arguments
from runtime.tools.schemas import check_tool_name, normalise_parameters
from runtime.sampling_defaults import unset_fields
from runtime.stops import check_stops
from runtime.types import (
    ChatRequest,
    FieldNames,
    Message,
    PromptTruncation,
    ReasoningOptions,
    SamplingParams,
    TemplateOptions,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)

MAX_TOP_LOGPROBS = 20  # OpenAI's bound for top_logprobs (and vLLM's default max_logprobs)


def sampling_params(req: s.SamplingFields, max_tokens: int | None, logprobs: int | None = None) -> SamplingParams:
    _check_stream_options(req)
    check_seed_span(req.seed, req.n, "seed")
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    check_stops(stop, "stop")
    return SamplingParams(
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,  # 0 is greedy (SamplingParams.greedy)
        top_k=max(req.top_k or 0, 0),
        min_p=req.min_p or 0.0,
        frequency_penalty=req.frequency_penalty or 0.0,
        presence_penalty=req.presence_penalty or 0.0,
        repetition_penalty=req.repetition_penalty or 1.0,
        seed=req.seed,
        max_new_tokens=max_tokens,
        min_new_tokens=_min_tokens(req, max_tokens),
        stop=stop,
        ignore_eos=req.ignore_eos,
        stop_token_ids=tuple(req.stop_token_ids or ()),
        allowed_token_ids=_allowed_token_ids(req),
        skip_special_tokens=req.skip_special_tokens,
        # (logprob_token_ids alone turn logprobs on, as on vLLM)
        logprobs=0 if logprobs is None and req.logprob_token_ids else logprobs,
        logprob_token_ids=tuple(dict.fromkeys(req.logprob_token_ids or ())),
        tokens_as_ids=req.return_tokens_as_token_ids,
        logit_bias=logit_bias(req.logit_bias),
        unset=unset_fields(req, ("temperature", "top_p", "top_k", "min_p", "repetition_penalty"),
                           max_new_tokens=max_tokens),
        # (continuous usage counts the tokens as their ids arrive)
        return_token_ids=req.return_token_ids or continuous_usage(req),
    )


def check_seed_span(seed: int | None, n: int, param: str) -> None:
    """Choice i uses seed + i, which both engines must hold (SGLang keeps seeds in an int64)."""
    if seed is not None and seed + n - 1 > s.SEED_MAX:
        raise InvalidRequest(f"{param.rsplit('.', 1)[-1]} must be at most {s.SEED_MAX} - (n - 1): choice i uses "
                             f"{param.rsplit('.', 1)[-1]} + i.", param=param)


def _allowed_token_ids(req: s.SamplingFields) -> tuple[int, ...]:
    if req.allowed_token_ids is None:
        return ()
    if not req.allowed_token_ids:  # (as vLLM answers: an empty list would allow nothing)
        raise InvalidRequest("allowed_token_ids must name at least one token.", param="allowed_token_ids")
    return tuple(dict.fromkeys(req.allowed_token_ids))


def _min_tokens(req: s.SamplingFields, max_tokens: int | None) -> int:
    if max_tokens is not None and req.min_tokens > max_tokens:
        raise InvalidRequest(f"min_tokens ({req.min_tokens}) must be at most max_tokens ({max_tokens}).",
                             param="min_tokens")
    return req.min_tokens


def continuous_usage(req: s.SamplingFields) -> bool:
    options = req.stream_options
    return bool(req.stream and options and options.include_usage and options.continuous_usage_stats)


def _check_stream_options(req: s.SamplingFields) -> None:
    # OpenAI and vLLM refuse it rather than ignore it: a client asking for usage chunks would get none.
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true.", param="stream_options")


def logit_bias(bias: dict[str, float] | None) -> tuple[tuple[int, float], ...]:
    """OpenAI's {"token id": bias}; whether each id is in the vocabulary is checked where the model is known."""
    out: dict[int, float] = {}  # "1" and "01" name one token: the last wins, as in SGLang
    for key, value in (bias or {}).items():
        if not (key.isascii() and key.isdigit() and len(key) <= 10):
            raise InvalidRequest(f"logit_bias keys must be token ids, got {key!r}.", param="logit_bias")
        if not -100.0 <= value <= 100.0:
            raise InvalidRequest(f"logit_bias values must be between -100 and 100, got {value} for token {key}.",
                                 param="logit_bias")
        out[int(key)] = float(value)
    return tuple(out.items())


def chat_logprobs(req: s.ChatCompletionRequest) -> int | None:
    """`logprobs: true` (+ `top_logprobs` alternatives) -> how many alternatives; None when not asked for."""
    if req.logprobs is not None and not isinstance(req.logprobs, bool):
        raise InvalidRequest("logprobs must be a boolean for chat completions (top_logprobs sets how many "
                             "alternatives).", param="logprobs")
    if req.top_logprobs is not None:
        if not 0 <= req.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}.", param="top_logprobs")
        if req.top_logprobs and not req.logprobs:
            raise InvalidRequest("top_logprobs requires logprobs to be true.", param="top_logprobs")
    return (req.top_logprobs or 0) if req.logprobs else None


def completion_logprobs(req: s.CompletionRequest) -> int | None:
    """`logprobs: N` -> N alternatives per token (0 gives the chosen tokens' own); None when not asked for."""
    if req.logprobs is None:
        return None
    if isinstance(req.logprobs, bool) or not 0 <= req.logprobs <= MAX_TOP_LOGPROBS:
        raise InvalidRequest(f"logprobs must be an integer between 0 and {MAX_TOP_LOGPROBS}.", param="logprobs")
    return req.logprobs


def prompt_logprobs(req: s.SamplingFields) -> int | None:
    """vLLM's prompt_logprobs: how many alternatives per prompt position (0: the prompt's own tokens only)."""
    n = req.prompt_logprobs
    if n is None:
        return None
    if not 0 <= n <= MAX_TOP_LOGPROBS:
        raise InvalidRequest(f"prompt_logprobs must be between 0 and {MAX_TOP_LOGPROBS}.", param="prompt_logprobs")
    if req.stream:
        raise InvalidRequest("prompt_logprobs are not available when stream is true.", param="prompt_logprobs")
    return n


def prompt_truncation(req: s.SamplingFields) -> PromptTruncation | None:
    """vLLM's truncate_prompt_tokens and truncation_side (which alone changes nothing, as on vLLM)."""
    if req.truncate_prompt_tokens is None:
        return None
    return PromptTruncation(req.truncate_prompt_tokens, req.truncation_side or "left")


def chat_request(req: s.ChatCompletionRequest) -> ChatRequest:
    if not req.messages:
        raise InvalidRequest("messages must be a non-empty list.", param="messages")
    check_tool_count(len(req.tools or ()))  # before any tool's schema check: those are what cost
    messages = tuple(_message(m, i) for i, m in enumerate(req.messages))
    tools = tuple(_tool(t, i) for i, t in enumerate(req.tools or ()))
    return ChatRequest(
        messages=messages,
        sampling=sampling_params(req, req.max_completion_tokens or req.max_tokens, chat_logprobs(req)),
        tools=tools,
        tool_choice=_tool_choice(req, tools),
        response_format=output_format(req),
        template=_template_options(req),
        prompt_logprobs=prompt_logprobs(req),
        reasoning=reasoning_options(req),
        truncation=prompt_truncation(req),
        fields=FieldNames(max_tokens="max_completion_tokens" if req.max_completion_tokens else "max_tokens"),
    )


def _template_options(req: s.ChatCompletionRequest) -> TemplateOptions:
    """vLLM's rules: continuing the final message means no new assistant turn (asking for both is a 400)."""
    add = req.add_generation_prompt
    if req.continue_final_message:
        if add is True:
            raise InvalidRequest("continue_final_message and add_generation_prompt cannot both be true.",
                                 param="add_generation_prompt")
        add = False
    kwargs = req.chat_template_kwargs or {}
    for key in kwargs:
        if key in RESERVED_TEMPLATE_KWARGS:
            raise InvalidRequest(f"chat_template_kwargs may not set {key!r}.", param=f"chat_template_kwargs.{key}")
    return TemplateOptions(add is not False, req.continue_final_message, dict(kwargs))


# The switches a client may set in chat_template_kwargs that say whether the model thinks (the families'
# template variables, runtime/reasoning/formats.py); the budget and forced opening follow them.
_THINKING_SWITCHES = ("enable_thinking", "thinking")


def reasoning_options(req: s.ChatCompletionRequest) -> ReasoningOptions:
    """reasoning_effort "none"/"minimal" turns thinking off, the others on; an explicit switch in
    chat_template_kwargs has the last word."""
    kwargs = dict(req.chat_template_kwargs or {})
    enabled: bool | None = None
    if req.reasoning_effort is not None:
        enabled = req.reasoning_effort not in ("none", "minimal")
    for switch in _THINKING_SWITCHES:
        if isinstance(kwargs.get(switch), bool):
            enabled = kwargs[switch]
    return ReasoningOptions(enabled, req.reasoning_effort, req.thinking_token_budget)


def _text(content: str | list[Any] | None, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for i, part in enumerate(content):
        if not isinstance(part, s.TextPart):
            raise InvalidRequest(
                f"Content parts of type {type(part).__name__} are not supported by this model; send text.",
                param=f"{param}[{i}]",
            )
        parts.append(part.text)
    return "".join(parts)


def _message(m: s.ChatMessageIn, i: int) -> Message:
    param = f"messages[{i}].content"
    match m:
        case s.SystemMessage() | s.DeveloperMessage():
            return Message("system", _text(m.content, param))
        case s.UserMessage():
            return Message("user", _text(m.content, param))
        case s.AssistantMessage():
            calls = tuple(_history_call(c, f"messages[{i}].tool_calls[{j}]") for j, c in enumerate(m.tool_calls or ()))
            return Message("assistant", _text(m.content, param), tool_calls=calls,
                           reasoning=m.reasoning_content or m.reasoning)
        case s.ToolMessage():
            return Message("tool", _text(m.content, param), tool_call_id=m.tool_call_id)
    raise AssertionError(m)


def _history_call(call: s.ToolCallIn, param: str) -> ToolCall:
    return ToolCall(call.id, call.function.name, parse_arguments(call.function.arguments, f"{param}.function.arguments"))


def _tool(t: s.ToolDef, i: int) -> Tool:
    check_tool_name(t.function.name, f"tools[{i}].function.name")
    param = f"tools[{i}].function.parameters"
    parameters = normalise_parameters(t.function.parameters, param)
    return Tool(t.function.name, t.function.description or "", parameters, bool(t.function.strict), source=param)


def _tool_choice(req: s.ChatCompletionRequest, tools: tuple[Tool, ...]) -> ToolChoice:
    parallel = req.parallel_tool_calls is not False
    choice = req.tool_choice
    if choice is None:
        return ToolChoice(ToolChoiceMode.AUTO if tools else ToolChoiceMode.NONE, parallel=parallel)
    if not tools and choice != "none":
        raise InvalidRequest("tool_choice is set but no tools were given.", param="tool_choice")
    if isinstance(choice, s.NamedToolChoice):  # (that it names one of the tools: ChatRequest checks)
        return ToolChoice(ToolChoiceMode.NAMED, name=choice.function.name, parallel=parallel)
    return ToolChoice(ToolChoiceMode(choice), parallel=parallel)


MAX_PROMPTS = 64  # prompts in one completions request; each runs n generations, admitted together


def completion_prompts(req: s.CompletionRequest) -> list[str | list[int]]:
    """`prompt` as a list of prompts: a string, a list of token ids, or a list of either (a batch, answered
    prompt-major: choice i * n + j is prompt i's j-th, as OpenAI and vLLM index them)."""
    if req.suffix or (req.best_of or 1) > 1:
        raise InvalidRequest("suffix and best_of are not supported.", param="suffix" if req.suffix else "best_of")
    if req.max_tokens == 0 and not req.echo:
        raise InvalidRequest("max_tokens 0 is for scoring a prompt: it needs echo.", param="max_tokens")
    prompt: Any = req.prompt
    if isinstance(prompt, str) or (prompt and all(_is_token_id(x) for x in prompt)):
        return [_one_prompt(prompt, "prompt")]
    if not prompt:
        raise InvalidRequest("prompt must not be empty.", param="prompt")
    if len(prompt) > MAX_PROMPTS:
        raise InvalidRequest(f"At most {MAX_PROMPTS} prompts per request.", param="prompt")
    return [_one_prompt(p, f"prompt[{i}]") for i, p in enumerate(prompt)]


def _is_token_id(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _one_prompt(prompt: Any, param: str) -> str | list[int]:
    if isinstance(prompt, list):
        if not prompt:
            raise InvalidRequest("A prompt must not be empty.", param=param)
        if not all(_is_token_id(x) and x >= 0 for x in prompt):
            raise InvalidRequest("A prompt must be a string or a list of token ids.", param=param)
        return prompt
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("A prompt must be a non-empty string or a list of token ids.", param=param)
    return prompt
