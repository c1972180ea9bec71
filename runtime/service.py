"""The generation service both API dialects call: render, budget, constrain, run, parse.

Dialects hand in a neutral ChatRequest (or a completion prompt) and get neutral ChatEvents back; engine
specifics stay behind the Engine protocol, model-family specifics behind the tool format.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace

from runtime.engines import Engine
from runtime.errors import ContextLengthExceeded, InvalidRequest
from runtime.model import ModelInfo
from runtime.stops import StopMatcher
from runtime.templating import ChatTemplate
from runtime.tools.base import CallParser, JsonStringEscaper, ToolFormat
from runtime.tools.plan import ChatPlan, plan_chat
from runtime.types import (
    ChatEvent,
    ChatFinished,
    ChatRequest,
    Constraint,
    EngineRequest,
    Finished,
    FinishReason,
    Logprobs,
    PromptLogprobs,
    SamplingParams,
    TextDelta,
)


# Said in every context-length error: the window is the server's setting, and agents' first requests (Claude
# Code's is ~20k tokens) overflow a small model's default window.
WINDOW_HINT = "(The server's window is set by --context-length.)"


@dataclass(frozen=True)
class PreparedRequest:
    engine_request: EngineRequest
    parser: CallParser | None
    json_text: bool = False  # escape raw control characters in JSON strings of the text output
    # Stop strings matched on the text outside tool calls (with a parser, the engine must not stop inside a
    # call: a stop string such as "\n" would cut `<tool_call>\n` and lose the call).
    text_stops: tuple[str, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        return len(self.engine_request.input_ids)


class GenerationService:
    def __init__(self, engine: Engine, model: ModelInfo, tool_format: ToolFormat) -> None:
        self.engine = engine
        self.model = model
        self.tool_format = tool_format
        self.template = ChatTemplate(model)

    @property
    def context_length(self) -> int:
        return self.model.context_length

    # -- preparing ------------------------------------------------------------------------------------

    async def prepare_chat(self, request: ChatRequest) -> PreparedRequest:
        # Planning (a schema relaxation per tool) and rendering take time proportional to the request: in a
        # worker thread, off the event loop.
        plan, input_ids = await asyncio.to_thread(self._plan_and_render, request)
        sampling = self._budget(len(input_ids), request.sampling, clamp=request.clamp_max_tokens)
        text_stops: tuple[str, ...] = ()
        if plan.parser is not None:
            text_stops, sampling = sampling.stop, replace(sampling, stop=())
        if plan.keep_special_tokens:
            sampling = replace(sampling, skip_special_tokens=False)
        return PreparedRequest(self._engine_request(input_ids, sampling, plan.constraint), plan.parser,
                               plan.json_text, text_stops)

    async def prepare_completion(self, prompt: str | list[int], sampling: SamplingParams, *,
                                 prompt_logprobs: bool = False) -> PreparedRequest:
        if isinstance(prompt, list):
            ids = prompt
            self._require_tokens(ids, "prompt")
        else:  # a raw prompt gets the tokenizer's BOS, as base models expect (chat templates write their own)
            ids = await asyncio.to_thread(self.template.encode, prompt, add_special_tokens=True)
        request = self._engine_request(ids, self._budget(len(ids), sampling), None)
        return PreparedRequest(replace(request, prompt_logprobs=prompt_logprobs), None)

    async def count_chat_tokens(self, request: ChatRequest) -> int:
        return len(await self.tokenize_chat(request))

    async def tokenize_chat(self, request: ChatRequest, *, add_generation_prompt: bool = True) -> list[int]:
        """The prompt's token ids exactly as a chat request with these messages and tools would send them."""
        _, ids = await asyncio.to_thread(self._plan_and_render, request, add_generation_prompt=add_generation_prompt)
        return ids

    def _plan_and_render(self, request: ChatRequest, *, add_generation_prompt: bool = True) -> tuple[ChatPlan, list[int]]:
        plan = plan_chat(request, self.tool_format, self.template.renders_tools,
                         template_renders_calls=self.template.renders_calls)
        return plan, self.template.render(plan.messages, plan.tools, add_generation_prompt=add_generation_prompt)

    async def tokenize_text(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return await asyncio.to_thread(self.template.encode, text, add_special_tokens=add_special_tokens)

    async def detokenize(self, ids: list[int]) -> str:
        self._require_tokens(ids, "tokens")
        return await asyncio.to_thread(self.model.tokenizer.decode, ids)

    def _require_tokens(self, ids: Iterable[int], param: str) -> None:
        """Every id one of the model's tokens, or a 400 naming `param` (the one check for prompts, logit_bias,
        stop_token_ids and /detokenize)."""
        for token_id in ids:
            if not 0 <= token_id < self.model.vocab_size:
                raise InvalidRequest(f"Token id {token_id} in {param} is outside the vocabulary (size "
                                     f"{self.model.vocab_size}).", param=param)

    def _engine_request(self, ids: list[int], sampling: SamplingParams, constraint: Constraint | None) -> EngineRequest:
        # The sampling fields only the model can check.
        self._require_tokens((token_id for token_id, _ in sampling.logit_bias), "logit_bias")
        self._require_tokens(sampling.stop_token_ids, "stop_token_ids")
        return EngineRequest(uuid.uuid4().hex, tuple(ids), sampling, constraint)

    def _budget(self, prompt_tokens: int, sampling: SamplingParams, *, clamp: bool = False) -> SamplingParams:
        """Fit the output into the context window: reject what cannot fit, fill in an absent max."""
        window = self.context_length
        scoring_only = sampling.max_new_tokens == 0  # (echo with max_tokens 0: the prompt may fill the window)
        if prompt_tokens > window or (prompt_tokens == window and not scoring_only):
            raise ContextLengthExceeded(
                f"This model's maximum context length is {window} tokens. However, your prompt is "
                f"{prompt_tokens} tokens long, leaving no room for output. {WINDOW_HINT}",
                prompt_tokens=prompt_tokens, max_context=window, param="messages",
            )
        room = window - prompt_tokens
        wanted = sampling.max_new_tokens
        if wanted is None or (clamp and wanted > room):
            return replace(sampling, max_new_tokens=room)
        if wanted > room:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {window} tokens. However, you requested "
                f"{prompt_tokens + wanted} tokens ({prompt_tokens} in the messages, {wanted} in the completion). "
                f"Please reduce the length of the messages or completion. {WINDOW_HINT}",
                prompt_tokens=prompt_tokens, max_context=window, param="max_tokens",
            )
        return sampling

    # -- running --------------------------------------------------------------------------------------

    async def run(self, prepared: PreparedRequest) -> AsyncIterator[ChatEvent]:
        """Engine events through the tool-call parser (and, with one, the stop strings). Closing this
        iterator aborts the engine request."""
        parser = prepared.parser
        escape = JsonStringEscaper() if prepared.json_text else None
        stops = StopMatcher(prepared.text_stops)
        stopped_by: str | None = None  # a text stop string matched: the engine was told to abort

        def text(delta: str) -> list[ChatEvent]:
            nonlocal stopped_by
            result = stops.push(delta)
            if result.matched is not None:
                stopped_by = result.matched
            out = escape(result.text) if escape is not None else result.text
            return [TextDelta(out)] if out else []

        def parsed(events: Iterable[ChatEvent]) -> list[ChatEvent]:
            out: list[ChatEvent] = []
            for event in events:
                if stopped_by is not None:
                    break
                out.extend(text(event.text) if isinstance(event, TextDelta) else [event])
            return out

        events = self.engine.generate(prepared.engine_request)
        try:
            async for event in events:
                if isinstance(event, (Logprobs, PromptLogprobs)):  # not text: past the parser and stops as it is
                    if stopped_by is None:
                        yield event
                    continue
                if isinstance(event, TextDelta):
                    if stopped_by is None:
                        for out in parsed(parser.feed(event.text) if parser is not None else (event,)):
                            yield out
                        if stopped_by is not None:
                            await self.engine.abort(prepared.engine_request.rid)
                    continue
                assert isinstance(event, Finished)
                calls = 0
                if parser is not None and stopped_by is None:
                    for out in parsed([*parser.finish(), TextDelta(stops.flush())]):
                        yield out
                if parser is not None:
                    calls = parser.calls
                if stopped_by is not None:
                    yield ChatFinished(FinishReason.STOP, event.usage, stopped_by, calls)
                    return
                reason = event.reason
                if calls and reason is FinishReason.STOP and parser is not None and not parser.in_call:
                    reason = FinishReason.TOOL_CALLS
                yield ChatFinished(reason, event.usage, event.matched_stop, calls)
                return
        finally:
            await events.aclose()  # type: ignore[attr-defined]  # both engines yield from async generators
