"""The generation service both API dialects call: render, budget, constrain, run, parse.

Dialects hand in a neutral ChatRequest (or a completion prompt) and get neutral ChatEvents back; engine
specifics stay behind the Engine protocol, model-family specifics behind the tool and reasoning formats.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, replace

from runtime.engines import Engine
from runtime.errors import ContextLengthExceeded, InvalidRequest
from runtime.model import ModelInfo
from runtime.output import OutputPipeline, OutputSpec
from runtime.reasoning.formats import ReasoningFormat
from runtime.reasoning.grammar import unforced, with_reasoning
from runtime.reasoning.plan import ReasoningModel, ReasoningPlan
from runtime.templating import ChatTemplate
from runtime.tools.base import ToolFormat
from runtime.tools.plan import ChatPlan, check_grammar, plan_chat, text_constraint, text_schema, text_sources
from runtime.tools.budget import DEFAULT_GRAMMAR_BUDGET
from runtime.sampling_defaults import SamplingDefaults
from runtime.tool_policy import apply_tool_call_first
from runtime.types import (
    ChatEvent,
    ChatRequest,
    Constraint,
    ConstraintKind,
    EngineRequest,
    FieldNames,
    PromptTruncation,
    ResponseFormat,
    SamplingParams,
    ToolChoiceMode,
)


# Said in every context-length error: the window is the server's setting, and agents' first requests (Claude
# Code's is ~20k tokens) overflow a small model's default window.
WINDOW_HINT = "(The server's window is set by --context-length.)"
# Tokens per /detokenize, and per /tokenize or count_tokens in text (or the window's, if longer)
COUNT_LIMIT = 131_072


@dataclass(frozen=True)
class PreparedRequest:
    engine_request: EngineRequest
    output: OutputSpec = OutputSpec()  # the parser, text stop strings and escaping its output goes through
    prompt_cut: bool = False  # truncate_prompt_tokens took tokens off the prompt

    @property
    def rid(self) -> str:
        return self.engine_request.rid

    @property
    def prompt_tokens(self) -> int:
        return len(self.engine_request.input_ids)


def _stops_to_the_pipeline(sampling: SamplingParams) -> tuple[tuple[str, ...], SamplingParams]:
    """The request's stop strings, for the output pipeline to match, and the sampling without them, for the
    engine: one matcher for every request, which never cuts a call or the thinking (a stop string such as
    "\n" would cut `<tool_call>\n`) and counts a stopped output's tokens alike on every engine."""
    return sampling.stop, replace(sampling, stop=())


def _rename(message: dict, old: str, new: str) -> dict:
    if old == new or old not in message:
        return message
    out = dict(message)
    out[new] = out.pop(old)
    return out


class GenerationService:
    def __init__(self, engine: Engine, model: ModelInfo, tool_format: ToolFormat,
                 reasoning_format: ReasoningFormat | None = None, *,
                 grammar_budget: int = DEFAULT_GRAMMAR_BUDGET, tool_call_first: bool = False,
                 first_tool: str | None = None,
                 sampling_defaults: SamplingDefaults = SamplingDefaults()) -> None:
        self.engine = engine
        self.model = model
        self.tool_format = tool_format
        self.template = ChatTemplate(model)
        self.reasoning = ReasoningModel(reasoning_format, model.tokenizer) if reasoning_format else None
        self.grammar_budget = grammar_budget  # positions (runtime/tools/budget.py); --grammar-budget
        self.tool_call_first = tool_call_first or first_tool is not None  # --tool-call-first (runtime/tool_policy.py)
        self.first_tool = first_tool  # --first-tool
        self.sampling_defaults = sampling_defaults  # for what requests leave unset (runtime/sampling_defaults.py)
        # An upper bound on the characters one token spells: its vocabulary entry's length (byte-level BPE writes
        # a character per byte; SentencePiece its pieces as they are; added tokens their text). Not quite a bound
        # for an added token that strips the whitespace beside it (Phi-3's): a prompt of hundreds of thousands of
        # spaces beside one could be refused, where it would fit.
        self.max_chars_per_token = max((len(token) for token in model.tokenizer.get_vocab()), default=1)

    @property
    def context_length(self) -> int:
        return self.model.context_length

    # -- preparing ------------------------------------------------------------------------------------

    async def prepare_chat(self, request: ChatRequest, rid: str | None = None, *,
                           adapter: str | None = None) -> PreparedRequest:
        """`rid`: the engine's id for the run (the edge's request id, so the engine's logs name it); `adapter`:
        the LoRA adapter the client named as its model (app/models.py), None for the base model."""
        if self.tool_call_first:
            request = apply_tool_call_first(request, self.first_tool)
        request = replace(request, sampling=self.sampling_defaults.apply(request.sampling))
        # Planning (a schema relaxation per tool) and rendering take time proportional to the request: in a
        # worker thread, off the event loop.
        plan, rendered, reasoning = await asyncio.to_thread(self._plan_and_render, request, generating=True)
        input_ids = self._truncate(rendered, request.truncation)
        sampling = self._budget(len(input_ids), request.sampling, request.fields, clamp=request.clamp_max_tokens)
        text_stops, sampling = _stops_to_the_pipeline(sampling)
        if plan.keep_special_tokens or (reasoning is not None and self.reasoning is not None
                                        and self.reasoning.keeps_special_tokens):
            sampling = replace(sampling, skip_special_tokens=False)
        engine_request = self._engine_request(input_ids, sampling, plan.constraint, rid, adapter,
                                              text_per_token=bool(text_stops))
        if request.prompt_logprobs is not None:
            engine_request = replace(engine_request, prompt_logprobs=True, prompt_top_logprobs=request.prompt_logprobs)
        if reasoning is not None and not self._forcing_fits(request, plan, reasoning):
            reasoning = unforced(reasoning)
        if reasoning is not None:
            engine_request = replace(engine_request, constraint=with_reasoning(plan.constraint, reasoning),
                                     thinking=reasoning.control)
        return PreparedRequest(engine_request, OutputSpec(plan.parser, text_stops, plan.json_text, reasoning,
                                                          tokens_as_ids=engine_request.sampling.tokens_as_ids),
                               prompt_cut=len(input_ids) < len(rendered))

    def _forcing_fits(self, request: ChatRequest, plan: ChatPlan, reasoning: ReasoningPlan) -> bool:
        """Whether the grammar accepts what the engine may force: think tags are free in every grammar
        (runtime/reasoning/grammar.py); harmony's headers without one, in a constraint on the answer's text
        (which becomes the final channel's content there), and in the harmony tool format's structural tag."""
        if reasoning.format.kind != "harmony" or plan.constraint is None:
            return True
        if plan.constraint.kind is not ConstraintKind.STRUCTURAL_TAG:
            return True
        return bool(request.tools) and self.tool_format.name == "harmony" and request.response_format.grammar is None

    async def prepare_completion(self, prompt: str | list[int], sampling: SamplingParams, *,
                                 prompt_logprobs: bool = False, prompt_top_logprobs: int | None = None,
                                 rid: str | None = None, adapter: str | None = None,
                                 response_format: ResponseFormat = ResponseFormat(),
                                 truncation: PromptTruncation | None = None,
                                 fields: FieldNames = FieldNames(prompt="prompt")) -> PreparedRequest:
        """`prompt_logprobs`: score the prompt too, with `prompt_top_logprobs` alternatives per position (None:
        as many as the output's; set, it asks for the prompt's scores by itself). `fields`: the dialect's names
        for the prompt and the output cap, for window errors."""
        sampling = self.sampling_defaults.apply(sampling)
        text_cut = False
        if isinstance(prompt, list):
            whole = prompt
            self._require_tokens(whole, fields.prompt)
        else:  # a raw prompt gets the tokenizer's BOS, as base models expect (chat templates write their own)
            bounded = self._bounded_text(prompt, truncation, fields)  # (len() alone: no work on the loop)
            text_cut = len(bounded) < len(prompt)
            whole = await asyncio.to_thread(self.template.encode, bounded, add_special_tokens=True)
        ids = self._truncate(whole, truncation)
        # The output's grammar, checked as a chat request's is (cost, then xgrammar's reading), off the loop
        json_text = text_schema(response_format)
        await asyncio.to_thread(check_grammar, text_sources(response_format, json_text), self.grammar_budget)
        constraint = text_constraint(response_format, json_text)
        text_stops, sampling = _stops_to_the_pipeline(sampling)
        request = self._engine_request(ids, self._budget(len(ids), sampling, fields), constraint, rid,
                                       adapter, text_per_token=bool(text_stops))
        scored = replace(request, prompt_logprobs=prompt_logprobs or prompt_top_logprobs is not None,
                         prompt_top_logprobs=prompt_top_logprobs)
        return PreparedRequest(scored, OutputSpec(text_stops=text_stops,
                                                  json_text=json_text is not None,
                                                  tokens_as_ids=scored.sampling.tokens_as_ids),
                               prompt_cut=text_cut or len(ids) < len(whole))

    async def count_chat_tokens(self, request: ChatRequest) -> int:
        return len(await self.tokenize_chat(request))

    async def tokenize_chat(self, request: ChatRequest) -> list[int]:
        """The prompt's token ids exactly as a chat request with these messages and tools would send them."""
        _, ids, _ = await asyncio.to_thread(self._plan_and_render, request, generating=False)
        return ids

    def _plan_and_render(self, request: ChatRequest, *, generating: bool,
                         ) -> tuple[ChatPlan, list[int], ReasoningPlan | None]:
        """`generating`: the prompt must fit the window (`_bounded_text`); else its tokens are only counted, and
        may be more than the window holds (up to COUNT_LIMIT's worth of text)."""
        plan = plan_chat(request, self.tool_format, self.template.renders_tools,
                         template_renders_calls=self.template.renders_calls, grammar_budget=self.grammar_budget)
        if self.reasoning is None:
            text = self._bounded(self.template.render_text(plan.messages, plan.tools, request.template), request,
                                 generating)
            return plan, self.template.encode(text), None
        # The family's thinking switches, under the client's own chat_template_kwargs; past thinking under the
        # name the template reads.
        switches = self.reasoning.template_kwargs(request.reasoning)
        options = replace(request.template, kwargs={**switches, **request.template.kwargs})
        messages = [_rename(m, "reasoning_content", self.reasoning.format.history_key) for m in plan.messages]
        text = self._bounded(self.template.render_text(messages, plan.tools, options), request, generating)
        call_forced = plan.parser is not None and request.tool_choice.mode in (ToolChoiceMode.REQUIRED,
                                                                              ToolChoiceMode.NAMED)
        return plan, self.template.encode(text), self.reasoning.plan(request.reasoning, text, call_forced=call_forced)

    def _bounded(self, text: str, request: ChatRequest, generating: bool) -> str:
        if generating:
            return self._bounded_text(text, request.truncation, request.fields)
        self.check_countable(text, "messages")
        return text

    def _bounded_text(self, text: str, truncation: PromptTruncation | None, fields: FieldNames) -> str:
        """vLLM's check before tokenizing: a text longer than the window's tokens could spell cannot fit, so it is
        refused before the tokenizer spends seconds on it (30 MB took 40 s); with truncate_prompt_tokens, cut to
        that length instead, so what is kept is exact for any text that could fit (cutting closer would change
        how the cut end tokenizes, and with it which tokens are the last k)."""
        limit = self.context_length * self.max_chars_per_token
        if len(text) <= limit:
            return text
        if truncation is not None:
            self._kept(truncation)  # its own checks first
            return text[-limit:] if truncation.side == "left" else text[:limit]
        at_least = -(-len(text) // self.max_chars_per_token)
        raise ContextLengthExceeded(
            f"This model's maximum context length is {self.context_length} tokens. However, your prompt is "
            f"{len(text)} characters long: at least {at_least} tokens, leaving no room for output. {WINDOW_HINT}",
            prompt_tokens=at_least, max_context=self.context_length, param=fields.prompt)

    def check_countable(self, text: str, param: str) -> None:
        """Counting (/tokenize, count_tokens) takes prompts longer than the window, up to COUNT_LIMIT tokens'
        worth of text, or the window's if longer: tokenizing is seconds of a core per megabyte."""
        limit = max(self.context_length, COUNT_LIMIT) * self.max_chars_per_token
        if len(text) > limit:
            raise InvalidRequest(f"The text is too long to count: {len(text)} characters, more than {limit} (what "
                                 f"{max(self.context_length, COUNT_LIMIT)} tokens can spell).", param=param)

    async def tokenize_text(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        self.check_countable(text, "prompt")
        return await asyncio.to_thread(self.template.encode, text, add_special_tokens=add_special_tokens)

    async def detokenize(self, ids: list[int], *, text_prompt: bool = False) -> str:
        """`text_prompt`: the ids are a text prompt's, whose leading BOS the tokenizer added: left out."""
        bos = self.model.tokenizer.bos_token_id
        if text_prompt and ids and bos is not None and ids[0] == bos:
            ids = ids[1:]
        # Decoding holds the interpreter's lock for part of its time (3M ids stalled the server for seconds):
        # at most what a long window holds, and checked off the event loop too.
        limit = max(self.context_length, COUNT_LIMIT)
        if len(ids) > limit:
            raise InvalidRequest(f"At most {limit} tokens can be detokenized at once; got {len(ids)}.", param="tokens")

        def decode() -> str:
            self._require_tokens(ids, "tokens")
            return self.model.tokenizer.decode(ids)

        return await asyncio.to_thread(decode)

    def _require_tokens(self, ids: Iterable[int], param: str) -> None:
        """Every id one of the model's tokens, or a 400 naming `param` (the one check for prompts, logit_bias,
        stop_token_ids and /detokenize)."""
        for token_id in ids:
            if not 0 <= token_id < self.model.vocab_size:
                raise InvalidRequest(f"Token id {token_id} in {param} is outside the vocabulary (size "
                                     f"{self.model.vocab_size}).", param=param)

    def _engine_request(self, ids: list[int], sampling: SamplingParams, constraint: Constraint | None,
                        rid: str | None = None, adapter: str | None = None, *,
                        text_per_token: bool = False) -> EngineRequest:
        # The sampling fields only the model can check.
        self._require_tokens((token_id for token_id, _ in sampling.logit_bias), "logit_bias")
        self._require_tokens(sampling.stop_token_ids, "stop_token_ids")
        self._require_tokens(sampling.allowed_token_ids, "allowed_token_ids")
        self._require_tokens(sampling.logprob_token_ids, "logprob_token_ids")
        return EngineRequest(rid or uuid.uuid4().hex, tuple(ids), sampling, constraint, adapter=adapter,
                             text_per_token=text_per_token)

    def _truncate(self, ids: list[int], truncation: PromptTruncation | None) -> list[int]:
        """vLLM's truncate_prompt_tokens, on the prompt's tokens as the engine would get them (a chat request's
        rendered by its template), before the window check."""
        if truncation is None:
            return ids
        keep = self._kept(truncation)
        if len(ids) <= keep:
            return ids
        return ids[-keep:] if truncation.side == "left" else ids[:keep]

    def _kept(self, truncation: PromptTruncation) -> int:
        window = self.context_length
        if truncation.keep > window:  # (vLLM's words)
            raise InvalidRequest(f"truncate_prompt_tokens={truncation.keep} cannot be greater than max_model_len = "
                                 f"{window}. Please request a smaller truncation size.", param="truncate_prompt_tokens")
        keep = window - 1 if truncation.keep == -1 else truncation.keep
        if keep == 0:
            raise InvalidRequest("truncate_prompt_tokens=0 leaves no prompt; keep at least one token (or -1: as many "
                                 "as the window allows).", param="truncate_prompt_tokens")
        return keep

    def _budget(self, prompt_tokens: int, sampling: SamplingParams, fields: FieldNames, *,
                clamp: bool = False) -> SamplingParams:
        """Fit the output into the context window: reject what cannot fit, fill in an absent max."""
        window = self.context_length
        scoring_only = sampling.max_new_tokens == 0  # (echo with max_tokens 0: the prompt may fill the window)
        if prompt_tokens > window or (prompt_tokens == window and not scoring_only):
            raise ContextLengthExceeded(
                f"This model's maximum context length is {window} tokens. However, your prompt is "
                f"{prompt_tokens} tokens long, leaving no room for output. {WINDOW_HINT}",
                prompt_tokens=prompt_tokens, max_context=window, param=fields.prompt,
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
                prompt_tokens=prompt_tokens, max_context=window, param=fields.max_tokens,
            )
        return sampling

    # -- running --------------------------------------------------------------------------------------

    async def run(self, prepared: PreparedRequest) -> AsyncIterator[ChatEvent]:
        """The run's ChatEvents: engine events through the output pipeline, ending with one ChatFinished.
        A stop string the pipeline matched aborts the engine request; closing this iterator aborts it too."""
        pipeline = OutputPipeline(prepared.output)
        aborted = False
        async with aclosing(self.engine.generate(prepared.engine_request)) as events:  # type: ignore[type-var]
            async for event in events:
                for out in pipeline.push(event):
                    yield out
                if pipeline.finished:
                    return
                if pipeline.stopped and not aborted:  # the rest is not wanted; its Finished brings the prompt usage
                    aborted = True
                    await self.engine.abort(prepared.rid)
