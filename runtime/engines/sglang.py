"""SGLang 0.5.23 as an in-process engine: `sglang.Engine` (sglang/srt/entrypoints/engine.py).

Token ids in, text out. The Engine runs a TokenizerManager in this process, which talks ZMQ to a scheduler
process per TP rank (or a data-parallel controller) and a detokenizer process; we send `input_ids` with our
sampling parameters and turn its streamed dicts into TextDelta/Finished events. Stop strings are not sent: the
output pipeline matches them (runtime/output.py), counting tokens by each TextDelta's `tokens`, which we take
from the chunk's `output_ids` (cut per token where the request asks: `_PerToken`). `import sglang` happens only
in start(), so a machine without sglang imports this module freely.

SGLang changes process-wide state. Living inside uvicorn, each side effect and what we do about it:

- One Engine per process, so one uvicorn worker. `Engine.shutdown()` (also registered with atexit) kills every
  child process of this process, not only SGLang's.
- `mp.set_start_method("spawn", force=True)`: children re-import the main module unless it is a package's
  `__main__` (`python -m app` is safe); any other entry script must guard its work with `if __name__ == "__main__"`.
- The constructor blocks for minutes (spawn, load weights, capture CUDA graphs). We run it in a worker thread
  (asyncio.to_thread) so the loop keeps answering /health meanwhile. The source supports this: off the main
  thread `_set_envs_and_config` only skips its launch-phase SIGQUIT handler, and the TokenizerManager's
  zmq.asyncio sockets and asyncio locks bind to a loop on first use, not at construction.
- The first request binds the TokenizerManager to the running loop (tokenizer_manager.py
  `auto_create_handle_loop` starts `handle_loop` there); every later call must come from that loop. The warm-up
  in start() makes it the app's loop.
- SIGQUIT is how SGLang's children report a failure to the parent. While the constructor runs we install a handler
  that only logs (the default action would core-dump the server); the constructor then raises and start() reports
  it. From the first request on, SGLang's running-phase handler kills the whole process tree: a crashed GPU worker
  ends the server, for its supervisor to restart.
- SIGTERM: the first request also installs SGLang's handler on the loop (drain, kill the tree, `sys.exit`), which
  would pre-empt uvicorn's graceful shutdown and the lifespan. After the warm-up we hand SIGTERM back to whoever
  held it (uvicorn), so shutdown runs the lifespan and close().
- Ours: before the Engine starts we set SGLANG_GRAMMAR_TIMEOUT (unless already set) to --grammar-timeout, which
  its schedulers read at import (default 300 s); they compile grammars in their own threads, cache failures and
  timeouts as invalid, and answer a 400. What reaches them has passed the grammar budget (runtime/tools/budget.py).
- Importing engine.py and tokenizer_manager.py sets the uvloop event-loop policy, and `configure_logger` calls
  `logging.basicConfig(force=True)` at SGLang's log level ("error"). The running loop is unaffected; we restore the
  previous policy and the root logger's handlers and level after construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import uuid
from dataclasses import replace
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, TypedDict

from runtime.adapters import LoraAdapter
from runtime.detokenize import IncrementalDetokenizer
from runtime.engines import EngineConfig
from runtime.errors import EngineFailure, EngineUnavailable, InvalidRequest, NotFound, Overloaded, ServiceError
from runtime.model import ModelInfo
from runtime.reasoning.budget import ThinkingBudgetProcessor, ThinkingTracker, control_params
from runtime.types import (
    Constraint,
    ConstraintKind,
    EngineEvent,
    EngineRequest,
    Finished,
    FinishReason,
    Logprobs,
    PromptLogprobs,
    SamplingParams,
    TextDelta,
    TokenIds,
    TokenLogprob,
    Usage,
)

log = logging.getLogger(__name__)

WARMUP_TOKENS = 4
CLOSE_DRAIN_SECONDS = 10.0  # how long close() waits for aborted streams to end before killing the engine
_REPLACEMENT = "\ufffd"

# SamplingParams field for each constraint (sglang/srt/sampling/sampling_params.py; at most one may be set).
_CONSTRAINT_KEYS = {
    ConstraintKind.JSON_SCHEMA: "json_schema",
    ConstraintKind.STRUCTURAL_TAG: "structural_tag",
    ConstraintKind.EBNF: "ebnf",
    ConstraintKind.REGEX: "regex",
}


# -- SGLang's shapes ---------------------------------------------------------------------------------------


class _FinishReasonJson(TypedDict, total=False):
    """`BaseFinishReason.to_json()` (sglang/srt/managers/schedule_batch.py):
    FINISH_MATCHED_TOKEN / FINISH_MATCHED_STR: {"type": "stop", "matched": int | str};
    FINISH_LENGTH: {"type": "length", "length": int};
    FINISH_ABORT: {"type": "abort", "message": str, "status_code": int | None, "err_type": str | None}."""

    type: str
    matched: int | str | list[int] | None
    length: int
    message: str
    status_code: int | None
    err_type: str | None


class _MetaInfo(TypedDict, total=False):
    """TokenizerManager `_handle_batch_output` (sglang/srt/managers/tokenizer_manager.py). An abort answered from
    the waiting queue (`_handle_abort_req`) carries only id, finish_reason, completion_tokens and e2e_latency."""

    id: str
    finish_reason: _FinishReasonJson | None  # None until the last chunk
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # always reported; --enable-cache-report only affects SGLang's own OpenAI server
    # With return_logprob (tokenizer_manager.py `add_logprob_to_meta_info`): every output token so far as
    # (logprob, token_id, text); text is None, as Engine.async_generate cannot ask for it. With top_logprobs_num,
    # per position a list of such tuples (None where there are none). Like `text`, these lists are cumulative.
    output_token_logprobs: list[tuple[float, int, str | None]]
    output_top_logprobs: list[list[tuple[float, int, str | None]] | None]
    # With token_ids_logprob: per position the logprob of each of those ids, in their order (None where none).
    output_token_ids_logprobs: list[list[tuple[float, int, str | None]] | None]
    # With logprob_start_len 0: the prompt's, the first token's logprob None; sent once prefill is done.
    input_token_logprobs: list[tuple[float | None, int, str | None]]
    input_top_logprobs: list[list[tuple[float, int, str | None]] | None]


class _Chunk(TypedDict):
    """One streamed output (tokenizer_manager.py `_stream_one_response`): `text` is the whole text so far
    (incremental_streaming_output=False, the default); `output_ids` is a live list until the last chunk."""

    text: str
    output_ids: list[int]
    meta_info: _MetaInfo


# -- our settings in SGLang's terms --------------------------------------------------------------------------


def server_args(config: EngineConfig) -> dict[str, Any]:
    """`sglang.Engine(**kwargs)`: each name is a field of ServerArgs (sglang/srt/arg_groups/fields/*.py).
    The tokenizer stays initialised (skip_tokenizer_init=False): SGLang detokenizes."""
    kwargs: dict[str, Any] = {
        "model_path": config.model_path,
        "served_model_name": config.served_model_name,
        "dtype": config.dtype,
        "random_seed": config.seed,
        "tp_size": config.tp_size,
        "dp_size": config.dp_size,
        "disable_radix_cache": config.disable_radix_cache,
        "enable_cache_report": True,
        "context_length": config.context_length,
        "mem_fraction_static": config.mem_fraction_static,
        "max_running_requests": config.max_running_requests,
        "chunked_prefill_size": config.chunked_prefill_size,
        "quantization": config.quantization,
        # The thinking budget runs as a custom logit processor (runtime/reasoning/budget.py); SGLang refuses
        # requests that carry one unless this is on (tokenizer_manager.py `_validate_one_request`).
        "enable_custom_logit_processor": True,
    }
    if config.lora_adapters:  # (sglang/srt/arg_groups/lora_hook.py reads each dict as one LoRARef)
        kwargs |= {"enable_lora": True, "lora_paths": [{"lora_name": a.name, "lora_path": a.path}
                                                       for a in config.lora_adapters]}
    if config.enable_lora or config.allow_runtime_lora:  # (SGLang loads adapters while serving only with LoRA on)
        kwargs["enable_lora"] = True
    kwargs |= {"max_lora_rank": config.max_lora_rank, "max_loras_per_batch": config.max_loras,
               "max_loaded_loras": config.max_cpu_loras}
    kwargs = {name: value for name, value in kwargs.items() if value is not None}
    # --engine-arg name=value: any other ServerArgs field, its value read as JSON where it parses as JSON
    # (numbers, true/false, lists), else as the string given. It wins over the settings above.
    return kwargs | {name: _json_or_text(value) for name, value in config.extra}


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def sampling_params(params: SamplingParams, constraint: Constraint | None) -> dict[str, Any]:
    """The `sampling_params` dict (sglang/srt/sampling/sampling_params.py `SamplingParams`)."""
    if params.allowed_token_ids:  # SGLang's SamplingParams has no such field (0.5.23): refused, never ignored
        raise InvalidRequest("allowed_token_ids is not supported on the SGLang engine; use logit_bias, or a "
                             "constraint (structured_outputs.choice, regex).", param="allowed_token_ids")
    out: dict[str, Any] = {
        # Omitted, SGLang would stop at 128 tokens; None runs to the context window (scheduler.py
        # `init_req_max_new_tokens`).
        "max_new_tokens": params.max_new_tokens,
        "min_new_tokens": params.min_new_tokens,
        # SGLang turns temperature 0 into greedy (top_k=1) itself; our other greedy cases (a vanishing
        # temperature, top_p 0, which SGLang's verify() rejects) become that too.
        "temperature": 0.0 if params.greedy else params.temperature,
        "top_p": params.top_p if params.top_p > 0.0 else 1.0,
        "top_k": params.top_k if params.top_k > 0 else -1,  # -1 = whole vocabulary; 0 fails its verify()
        "min_p": params.min_p,
        "frequency_penalty": params.frequency_penalty,
        "presence_penalty": params.presence_penalty,
        "repetition_penalty": params.repetition_penalty,
        # No "stop": stop strings are the output pipeline's (runtime/output.py), on every engine.
        "stop_token_ids": list(params.stop_token_ids),
        "ignore_eos": params.ignore_eos,
        "skip_special_tokens": params.skip_special_tokens,
        # Honoured only when the engine runs with enable_deterministic_inference (sampling_batch_info.py).
        "sampling_seed": params.seed,
    }
    if params.logit_bias:  # added after the grammar's mask (sampling_batch_info.py), as the CPU engine does
        out["logit_bias"] = {str(token_id): bias for token_id, bias in params.logit_bias}
    if constraint is not None:
        out[_CONSTRAINT_KEYS[constraint.kind]] = constraint.text
    return out


def lora_args(request: EngineRequest) -> dict[str, Any]:
    """`async_generate`'s `lora_path`: the adapter's name as --lora-paths gave it (io_struct.py GenerateReqInput;
    the tokenizer manager resolves names, not paths, in its LoRA registry)."""
    return {"lora_path": request.adapter} if request.adapter is not None else {}


def thinking_args(request: EngineRequest, params: dict[str, Any]) -> dict[str, Any]:
    """The thinking budget as SGLang runs it: our processor, with the request's ThinkingControl in
    `custom_params` (SGLang hands each row's params, plus `__req__`, to the processor at every step). Only
    where something can be forced: counting alone needs nothing from SGLang (see `reasoning_tokens`)."""
    control = request.thinking
    if control is None or (control.budget is None and not control.force_open):
        return {}
    params["custom_params"] = {"thinking": control_params(control)}
    return {"custom_logit_processor": _PROCESSOR}


_PROCESSOR = ThinkingBudgetProcessor.to_str()


def reasoning_tokens(request: EngineRequest, output_ids: list[int]) -> int:
    """The thinking region's tokens, counted by the same tracker over the final output ids."""
    if request.thinking is None:
        return 0
    return ThinkingTracker.replay(request.thinking, output_ids).used


def logprob_args(request: EngineRequest) -> dict[str, Any]:
    """`async_generate` arguments for logprobs (GenerateReqInput). The output tokens': SGLang's values are ours,
    the processed logits over the temperature (sampler.py, without SGLANG_RETURN_ORIGINAL_LOGPROB). The
    prompt's only with prompt_logprobs (logprob_start_len 0; its default, -1, leaves them out)."""
    if request.sampling.logprobs is None and not request.prompt_logprobs:
        return {}
    # One count for the prompt's and the output's alternatives in SGLang: the larger; _NewLogprobs cuts the output's.
    # vLLM's logprob_token_ids name the output's alternatives instead: SGLang's token_ids_logprob, each position's
    # logprob of exactly those ids (the prompt's alternatives stay its top ones, as on the CPU engine).
    only = request.sampling.logprob_token_ids
    top = 0 if only else request.sampling.logprobs or 0
    if request.prompt_logprobs:  # the prompt's: as many as asked, else as many as the output's (the CPU engine's)
        prompt_top = request.prompt_top_logprobs
        top = max(top, prompt_top if prompt_top is not None else request.sampling.logprobs or 0)
    args: dict[str, Any] = {"return_logprob": True, "top_logprobs_num": top}
    if only:
        args["token_ids_logprob"] = list(only)
    if request.prompt_logprobs:
        args["logprob_start_len"] = 0
    return args


def prompt_logprobs(meta: _MetaInfo, vocab: list[bytes], prompt: tuple[int, ...],
                    top: int | None = None) -> PromptLogprobs | None:
    """meta_info's input_token_logprobs (the first one's logprob is None) once all the prompt's are there. The
    ids are the prompt's own: SGLang reports an id at or above vocab_size - 1 as 0 (logprob_result_processor.py)."""
    chosen = meta.get("input_token_logprobs") or []
    if len(chosen) < len(prompt):
        return None
    tops = [t[:top] if t and top is not None else t for t in meta.get("input_top_logprobs") or []]
    entries = [TokenLogprob.of(vocab, prompt[0], 0.0)]
    entries += [_entry(vocab, token_id, logprob or 0.0, tops, i)
                for i, ((logprob, _, _), token_id) in enumerate(zip(chosen, prompt)) if i > 0]
    return PromptLogprobs(tuple(entries))


def _entry(vocab: list[bytes], token_id: int, logprob: float, tops: list[Any], position: int) -> TokenLogprob:
    """One position's entry from SGLang's (logprob, token_id, text) rows, with its alternatives if any."""
    top = tops[position] if position < len(tops) and tops[position] else ()
    return TokenLogprob.of(vocab, token_id, logprob, tuple(TokenLogprob.of(vocab, t, lp) for lp, t, _ in top))


class _NewLogprobs:
    """SGLang's meta_info lists every output token's logprob so far; we emit the entries not yet sent."""

    def __init__(self, vocab: list[bytes], top: int, only: tuple[int, ...] = ()) -> None:
        self._vocab = vocab
        self._top = top  # alternatives asked for (SGLang may send more: logprob_args)
        self._only = bool(only)  # the alternatives are the chosen token and these ids (token_ids_logprob)
        self._sent = 0

    def take(self, meta: _MetaInfo) -> Logprobs | None:
        chosen = meta.get("output_token_logprobs") or []
        if self._only:  # the chosen token first, then the named ids in their order (sampler.py `token_logprob`)
            tops = [[(lp, t, None)] + [row for row in named or () if row[1] != t]
                    for (lp, t, _), named in zip(chosen, meta.get("output_token_ids_logprobs") or [])]
        else:
            tops = [t[: self._top] if t else t for t in meta.get("output_top_logprobs") or []]
        entries = [_entry(self._vocab, chosen[i][1], chosen[i][0], tops, i) for i in range(self._sent, len(chosen))]
        self._sent = max(self._sent, len(chosen))
        return Logprobs(tuple(entries)) if entries else None


class _NewIds:
    """SGLang's `output_ids` are every output token's so far (tokenizer_manager.py, without
    incremental_streaming_output); we emit the ones not yet sent."""

    def __init__(self) -> None:
        self._sent = 0

    def take(self, chunk: _Chunk) -> TokenIds | None:
        ids = chunk.get("output_ids") or []
        new, self._sent = tuple(ids[self._sent:]), max(self._sent, len(ids))
        return TokenIds(new) if new else None


class _TokenOrder:
    """A chunk's token ids and logprobs, each token's sent just before the TextDelta that completes its text
    (those of tokens whose text is held back after the chunk's last delta). A chunk of several tokens, cut into a
    delta per token (`_PerToken`), so never has a stop string's delta come after later tokens' logprobs: the
    output pipeline drops what follows a stop, so the logprobs and ids of a stopped output end where its usage
    does, as on the CPU engine."""

    def __init__(self) -> None:
        self._told = 0  # tokens that the deltas so far complete
        self._sent = 0  # tokens whose ids and logprobs have been sent

    def events(self, ids: TokenIds | None, logprobs: Logprobs | None,
               deltas: list[TextDelta]) -> list[EngineEvent]:
        pending_ids = list(ids.ids) if ids is not None else []
        pending_logprobs = list(logprobs.tokens) if logprobs is not None else []
        out: list[EngineEvent] = []
        for delta in deltas:
            self._told += delta.tokens
            out += self._take(self._told - self._sent, pending_ids, pending_logprobs)
            out.append(delta)
        out += self._take(max(len(pending_ids), len(pending_logprobs)), pending_ids, pending_logprobs)
        return out

    def _take(self, count: int, ids: list[int], logprobs: list[Any]) -> list[EngineEvent]:
        if count <= 0:
            return []
        taken_ids, ids[:] = ids[:count], ids[count:]
        taken_logprobs, logprobs[:] = logprobs[:count], logprobs[count:]
        self._sent += max(len(taken_ids), len(taken_logprobs))
        return [*([TokenIds(tuple(taken_ids))] if taken_ids else []),
                *([Logprobs(tuple(taken_logprobs))] if taken_logprobs else [])]


class _CumulativeText:
    """SGLang sends the whole text so far with every output token's id so far; we emit what is new, with the
    count of the tokens it completes (TextDelta.tokens). A trailing U+FFFD (the start of a multi-byte character
    whose remaining bytes are still to come) is held back until a later chunk settles it, and its tokens with it.

    `text` and `output_ids` agree: tokenizer_manager.py `_wait_one_response` reads both from the request's
    state when it hands the chunk over. A chunk brings one scheduler step's tokens, or several where this loop
    fell behind (it keeps only the newest output) or a step makes several (speculative decoding); with a
    `splitter`, such text is cut into a delta per token."""

    def __init__(self, splitter: _PerToken | None = None) -> None:
        self._splitter = splitter
        self._sent = 0
        self._told = 0  # tokens whose text has been sent

    def deltas(self, chunk: _Chunk, *, final: bool) -> list[TextDelta]:
        new = chunk["text"][self._sent :]
        if not final:
            new = new.rstrip(_REPLACEMENT)
        if not new:
            return []
        ids = chunk["output_ids"]
        self._sent += len(new)
        if self._splitter is None or len(ids) - self._told < 2:
            deltas = [TextDelta(new, len(ids) - self._told)]
        else:  # (tokens after its last piece of text, half a character, count in the next delta)
            deltas = self._splitter.split(ids, self._told, new, final=final)
        self._told += sum(delta.tokens for delta in deltas)
        return deltas


class _PerToken:
    """Text that several tokens brought, cut where each token completes its part: our own decode of those
    tokens after a few before them (runtime/detokenize.py, as the CPU engine streams). Where it disagrees with
    SGLang's text (a tokenizer option SGLang's detokenizer applies differently), the text stays one delta."""

    CONTEXT = 6  # tokens decoded before the new ones: enough to finish a character and a merge of spaces

    def __init__(self, tokenizer: Any, *, skip_special_tokens: bool) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens

    def split(self, ids: list[int], told: int, text: str, *, final: bool) -> list[TextDelta]:
        detokenizer = IncrementalDetokenizer(self._tokenizer, skip_special_tokens=self._skip_special_tokens)
        for token_id in ids[max(0, told - self.CONTEXT) : told]:
            detokenizer.push(token_id)
        pieces = [detokenizer.push(token_id) for token_id in ids[told:]]
        if final:
            pieces[-1] += detokenizer.flush()
        if "".join(pieces) != text:
            return [TextDelta(text, len(ids) - told)]
        deltas, tokens = [], 0
        for piece in pieces:
            tokens += 1
            if piece:
                deltas.append(TextDelta(piece, tokens))
                tokens = 0
        return deltas


def _abort_error(reason: _FinishReasonJson) -> ServiceError:
    status = int(reason["status_code"] or 500)
    message = reason.get("message") or "The request was aborted."
    if status == 429:
        return Overloaded(message)
    if status == 503:
        return EngineUnavailable(message)
    if 400 <= status < 500:  # e.g. "Failed to compile json_schema grammar: ..."
        return InvalidRequest(message)
    return EngineFailure(message)


# -- the engine ----------------------------------------------------------------------------------------------


class SglangEngine:
    def __init__(self, config: EngineConfig, model: ModelInfo) -> None:
        self._config = config
        self._model = model
        self._engine: Any = None  # sglang.Engine
        self._closing = False
        self._active: set[str] = set()  # rids whose stream has not finished
        self._aborted: set[str] = set()  # rids we asked SGLang to abort: their abort is not an error
        self._vocab: list[bytes] | None = None  # each token's bytes, built on the first logprobs request

    async def start(self) -> None:
        try:
            import sglang
        except ImportError as exc:
            raise EngineUnavailable("The sglang engine needs the GPU extra: pip install -e '.[gpu]'.") from exc
        os.environ.setdefault("SGLANG_GRAMMAR_TIMEOUT", f"{self._config.grammar_timeout:g}")
        on_main_thread = threading.current_thread() is threading.main_thread()
        sigterm_holder = signal.getsignal(signal.SIGTERM) if on_main_thread else None
        if on_main_thread:
            signal.signal(signal.SIGQUIT, _child_failed_during_launch)
        try:
            # Cancelled meanwhile (shutdown while loading), the thread still finishes; the atexit hook that
            # Engine.__init__ registers then reaps SGLang's processes.
            with _kept_process_settings():
                self._engine = await asyncio.to_thread(sglang.Engine, **server_args(self._config))
        except Exception as exc:
            log.exception("SGLang failed to start")
            raise EngineUnavailable(f"SGLang failed to start: {exc}") from exc
        try:
            await self._warm_up()
        except Exception as exc:
            log.exception("SGLang's warm-up generation failed")
            await self.close()
            raise EngineUnavailable(f"SGLang failed its warm-up generation: {exc}") from exc
        finally:
            if on_main_thread:
                _hand_back_sigterm(asyncio.get_running_loop(), sigterm_holder)
        log.info(
            "SGLang engine ready: %s (tp %d, dp %d)",
            self._config.model_path,
            self._config.tp_size,
            self._config.dp_size,
        )

    async def _warm_up(self) -> None:
        prompt = tuple(self._model.tokenizer.encode("Hello"))
        request = EngineRequest(uuid.uuid4().hex, prompt, SamplingParams(temperature=0.0, max_new_tokens=WARMUP_TOKENS))
        async for _ in self.generate(request):
            pass

    async def close(self) -> None:
        engine = self._engine
        if engine is None:
            return
        self._closing = True
        if self._active:
            self._aborted.update(self._active)
            engine.tokenizer_manager.abort_request(abort_all=True)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CLOSE_DRAIN_SECONDS
            while self._active and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if self._active:
                log.warning("SGLang: %d streams still open at shutdown", len(self._active))
        self._engine = None
        for task in getattr(engine.tokenizer_manager, "asyncio_tasks", ()):  # handle_loop, sigterm_watchdog
            task.cancel()
        await asyncio.to_thread(engine.shutdown)

    async def load_adapter(self, adapter: LoraAdapter) -> None:
        """SGLang's own dynamic loading (`Engine.async_load_lora_adapter`; it needs enable_lora at launch, and
        max_lora_rank / lora_target_modules that fit when no adapter was given then)."""
        result = await self._running().async_load_lora_adapter(adapter.name, adapter.path)
        if not result.success:
            raise InvalidRequest(f"SGLang could not load the LoRA adapter {adapter.name!r}: {result.error_message}",
                                 param="lora_path")

    async def unload_adapter(self, name: str) -> None:
        """SGLang unregisters the name at once and unloads once its running requests finish."""
        result = await self._running().async_unload_lora_adapter(name)
        if not result.success:
            message = result.error_message or ""
            error = NotFound if "does not exist" in message else InvalidRequest
            raise error(f"SGLang could not unload the LoRA adapter {name!r}: {message}", param="lora_name")

    def _running(self) -> Any:
        if self._engine is None or self._closing:
            raise EngineUnavailable("The SGLang engine is not running.")
        return self._engine

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        engine = self._engine
        if engine is None or self._closing:
            raise EngineUnavailable("The SGLang engine is not running.")
        rid = request.rid  # fixed-length uuid4 hex: SGLang aborts every rid that *starts with* the one given
        self._active.add(rid)
        stream: AsyncGenerator[_Chunk, None] | None = None  # TokenizerManager.generate_request
        finished = False
        try:
            splitter = (_PerToken(self._model.tokenizer, skip_special_tokens=request.sampling.skip_special_tokens)
                        if request.text_per_token else None)
            text = _CumulativeText(splitter)
            wants_logprobs = request.sampling.logprobs is not None or request.prompt_logprobs
            vocab = await self._vocabulary() if wants_logprobs else []
            asked = request.sampling.logprobs
            logprobs = (_NewLogprobs(vocab, asked, request.sampling.logprob_token_ids) if asked is not None
                        else None)
            prompt_pending = request.prompt_logprobs
            ids = _NewIds() if request.sampling.return_token_ids else None
            in_order = _TokenOrder()
            params = sampling_params(request.sampling, request.constraint)
            stream = await engine.async_generate(
                input_ids=list(request.input_ids),
                sampling_params=params,
                stream=True,
                rid=rid,
                **logprob_args(request),
                **thinking_args(request, params),
                **lora_args(request),
            )
            async for chunk in stream:
                reason = chunk["meta_info"]["finish_reason"]
                if prompt_pending and (scored := prompt_logprobs(chunk["meta_info"], vocab, request.input_ids,
                                                                 request.prompt_top_logprobs)):
                    prompt_pending = False
                    yield scored
                deltas = text.deltas(chunk, final=reason is not None)
                new_logprobs = logprobs.take(chunk["meta_info"]) if logprobs is not None else None
                new_ids = ids.take(chunk) if ids is not None else None
                events = in_order.events(new_ids, new_logprobs, deltas)
                if reason is None:
                    for out in events:
                        yield out
                    continue
                finished = True
                event = self._finished(request, reason, chunk["meta_info"])  # raises for an error abort
                if request.thinking is not None:
                    event = replace(event, usage=replace(
                        event.usage, reasoning_tokens=reasoning_tokens(request, chunk["output_ids"])))
                if prompt_pending and event.reason is not FinishReason.ABORT:
                    raise EngineFailure("SGLang returned no logprobs for the prompt.")
                self._active.discard(rid)
                for out in events:
                    yield out
                yield event
                return
            raise EngineFailure("The engine ended a stream without a finish reason.")
        except ValueError as exc:  # SGLang's request validation (e.g. the prompt exceeds the context length)
            raise InvalidRequest(str(exc)) from exc
        except ServiceError:
            raise
        except Exception as exc:
            log.exception("SGLang failed while generating %s", rid)
            raise EngineFailure("The engine failed while generating.") from exc
        finally:
            self._active.discard(rid)
            self._aborted.discard(rid)
            try:
                if not finished:  # the consumer left early (closed, cancelled) or SGLang failed: free the GPU
                    engine.tokenizer_manager.abort_request(rid=rid)  # a no-op for a rid SGLang no longer holds
            finally:
                if stream is not None:
                    await stream.aclose()  # SGLang's own cleanup (tokenizer_manager.py generate_request)

    async def _vocabulary(self) -> list[bytes]:
        """Each token's bytes from xgrammar's TokenizerInfo, as the CPU engine names tokens (about a second
        for a 150k vocabulary, once)."""
        if self._vocab is None:
            import xgrammar as xgr

            info = await asyncio.to_thread(xgr.TokenizerInfo.from_huggingface, self._model.tokenizer,
                                           vocab_size=self._model.vocab_size)
            self._vocab = list(info.decoded_vocab)
        return self._vocab

    async def abort(self, rid: str) -> None:
        if self._engine is None or rid not in self._active:
            return
        self._aborted.add(rid)
        self._engine.tokenizer_manager.abort_request(rid=rid)

    def _finished(self, request: EngineRequest, reason: _FinishReasonJson, meta: _MetaInfo) -> Finished:
        usage = Usage(
            prompt_tokens=meta.get("prompt_tokens", len(request.input_ids)),
            completion_tokens=meta.get("completion_tokens", 0),
            cached_tokens=meta.get("cached_tokens", 0),
        )
        kind = reason["type"]
        if kind == "stop":
            return Finished(FinishReason.STOP, usage, self._matched_stop(reason.get("matched"), request.sampling))
        if kind == "length":
            return Finished(FinishReason.LENGTH, usage)
        if kind == "abort":
            # Our own abort can come back with a status (400 "Aborted by AbortReq." from the grammar queue).
            if request.rid in self._aborted or reason.get("status_code") is None:
                return Finished(FinishReason.ABORT, usage)
            raise _abort_error(reason)
        raise EngineFailure(f"The engine reported an unknown finish reason {kind!r}.")

    def _matched_stop(self, matched: object, params: SamplingParams) -> str | None:
        """A stop token the request named, decoded (as the CPU engine reports it). EOS and a grammar's final
        token are not stop sequences; no stop string is sent, so none matches here."""
        if isinstance(matched, int) and matched in params.stop_token_ids:
            return str(self._model.tokenizer.decode([matched]))
        return None


# -- process-wide side effects ---------------------------------------------------------------------------------


def _child_failed_during_launch(signum: int, frame: Any) -> None:
    log.error("An SGLang child process failed during launch (SIGQUIT); the engine will not start.")


def _hand_back_sigterm(loop: asyncio.AbstractEventLoop, holder: Any) -> None:
    """Replace SGLang's loop SIGTERM handler with the one held before start() (uvicorn's)."""
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.remove_signal_handler(signal.SIGTERM)
    signal.signal(signal.SIGTERM, holder if holder is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _kept_process_settings() -> Iterator[None]:
    """Undo SGLang's uvloop policy and `logging.basicConfig(force=True)` once the Engine is built."""
    policy = asyncio.get_event_loop_policy()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(policy)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
