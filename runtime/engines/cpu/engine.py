"""The embedded CPU engine: PyTorch + xgrammar, one worker thread.

For the Llama family (Llama, Mistral, Qwen2, Qwen3, SmolLM) the worker runs our own model code with
continuous batching over a paged KV cache and a radix prefix cache (scheduler.py, kv_cache.py, model.py):
each step is one forward pass over every running sequence. Other architectures run on transformers, the
worker interleaving the active requests a token at a time (prefill in chunks); the log says which path a
model took. Either way the event loop only ever waits on queues: it is never blocked by model compute.
Aborts are flags the worker checks before every step. Sampling, grammars, logprobs and stop tokens are this
module's, shared by both paths (stop strings are the output pipeline's: runtime/output.py).

LoRA adapters (EngineConfig.lora_adapters, PEFT directories): our model code applies each sequence's adapter to
its own rows of the batched forward pass (lora.py); the transformers path wraps the model in peft's PeftModel
and switches adapter per forward pass (it runs one sequence per pass anyway). Neither path's prefix cache
shares keys/values between adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import torch

from runtime.adapters import LoraAdapter, check_ranks
from runtime.detokenize import IncrementalDetokenizer
from runtime.engines import EngineConfig
from runtime.engines.cpu.grammar import GrammarCache, GrammarMask
from runtime.engines.cpu.model import unsupported_reason
from runtime.engines.cpu.outbox import Outbox
from runtime.engines.cpu.prefix_cache import PrefixCache
from runtime.engines.cpu.sampler import apply_penalties, log_distribution, sample, token_logprob
from runtime.engines.cpu.utf8 import Utf8Guard
from runtime.engines.cpu.worker_task import WorkerTask
from runtime.errors import EngineFailure, EngineUnavailable, InvalidRequest, NotFound
from runtime.model import ModelInfo
from runtime.reasoning.budget import ThinkingTracker
from runtime.types import (
    EngineEvent,
    EngineRequest,
    Finished,
    FinishReason,
    Logprobs,
    PromptLogprobs,
    TextDelta,
    TokenIds,
    TokenLogprob,
    Usage,
)

log = logging.getLogger(__name__)

PREFILL_CHUNK = 256  # prompt tokens per step: bounds how long one prefill holds up other streams


@dataclass(eq=False)
class _Sequence:
    request: EngineRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue
    generator: torch.Generator
    mask: GrammarMask | None
    detokenizer: IncrementalDetokenizer
    cache: Any = None
    cached_tokens: int = 0
    computed: int = 0  # prompt tokens whose keys/values are in `cache`
    generated: list[int] = field(default_factory=list)
    prompt_logprobs: list[TokenLogprob] = field(default_factory=list)  # gathered chunk by chunk in prefill
    pending_bytes: bytes = b""  # an unfinished UTF-8 character at the end of the output
    untold: int = 0  # generated tokens whose text no TextDelta has carried yet (TextDelta.tokens)
    thinking: ThinkingTracker | None = None  # counts the thinking region's tokens, forces its end at the budget
    aborted: bool = False
    # the batched path (scheduler.py): tokens[:computed] have keys/values in `blocks`, the first len(chain)
    # of them read from the radix tree
    tokens: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    chain: list[Any] = field(default_factory=list)
    waiting_since: float = 0.0
    admitted: bool = False
    prompt_done: bool = False
    outbox: Outbox = field(default_factory=Outbox)  # the engine's: events held during a scheduler step

    def emit(self, event: EngineEvent) -> None:
        self.outbox.send(self.loop, self.events, event)


def fail(seq: _Sequence, exc: Exception) -> None:
    """End one sequence with an EngineFailure, logged once: one line for a failure the engine explains itself
    (the sampler's), the traceback for anything else (whose message the client never sees)."""
    if isinstance(exc, EngineFailure):
        log.error("%s: %s", seq.request.rid, exc.message)
        seq.emit(exc)
    else:
        log.error("CPU engine step failed for %s", seq.request.rid, exc_info=exc)
        seq.emit(EngineFailure("The engine failed while generating."))


class CpuEngine:
    def __init__(self, config: EngineConfig, model: ModelInfo) -> None:
        self._config = config
        self._info = model
        self._model: Any = None
        self._grammars: GrammarCache | None = None
        self._utf8: Utf8Guard | None = None
        self._prefix_cache = PrefixCache(config.prefix_cache_entries)
        self._inbox: queue.SimpleQueue[_Sequence | WorkerTask | None] = queue.SimpleQueue()
        self.outbox = Outbox()  # the worker's events to the loop (held per step by the scheduler)
        self._by_rid: dict[str, _Sequence] = {}
        self._waiting: dict[str, asyncio.Event] = {}  # requests waiting for a grammar or an adapter: set to abort
        self._worker: threading.Thread | None = None
        self._scheduler: Any = None  # a BatchScheduler when our model code runs this architecture
        self._closed = False
        self.running = 0  # sequences the worker is stepping (read by tests and stats)
        # What requests may name now, and where each one's weights are read from (to load it back).
        self._adapters = {a.name: a.path for a in config.lora_adapters}
        # Those whose weights the scheduler holds, least recently used first: at most --max-cpu-loras of them
        # (more only while that many are in use at once); the others are loaded back when a request names one,
        # as vLLM's CPU LoRA cache and SGLang's max_loaded_loras do.
        self._resident: OrderedDict[str, None] = OrderedDict()
        self._adapter_updates: asyncio.Lock | None = None  # one load, unload or eviction at a time
        self._unloading: set[str] = set()  # names whose unload waits for their running requests
        self._tasks: set[asyncio.Task] = set()  # background adapter work (trims, loads whose requester left)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        self._worker = threading.Thread(target=self._run, name="cpu-engine", daemon=True)
        self._worker.start()

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(self._config.threads or os.cpu_count() or 1)
        check_ranks(self._config.lora_adapters, self._config.max_lora_rank)
        # float32 by default, whatever the checkpoint holds: on CPUs without native bf16 (AVX2, most of them)
        # bf16 prefill measured 7.6x and decode 1.9x slower than float32 (bench/RESULTS.md).
        dtype = getattr(torch, self._config.dtype) if self._config.dtype != "auto" else torch.float32
        reason = unsupported_reason(self._info.config)
        if self._config.cpu_backend == "transformers":
            reason = "--cpu-backend transformers"
        elif self._config.cpu_backend == "native" and reason is not None:
            raise ValueError(f"--cpu-backend native cannot run {self._info.path}: {reason}")
        if reason is None:
            self._start_batched(dtype)
        else:
            log.info("CPU engine: transformers path for %s (%s), one sequence per forward pass",
                     self._info.path, reason)
            self._model = AutoModelForCausalLM.from_pretrained(self._info.path, dtype=dtype).eval()
            if self._config.lora_adapters:
                self._model = _with_peft_adapters(self._model, self._config.lora_adapters)
                if self._config.max_cpu_loras is not None:
                    log.warning("--max-cpu-loras does not apply on the transformers path: all %d adapters named "
                                "at start stay loaded", len(self._config.lora_adapters))
        self._grammars = GrammarCache(self._info.tokenizer, self._info.vocab_size, self._info.eos_token_ids,
                                      timeout=self._config.grammar_timeout)
        self._utf8 = Utf8Guard(self._grammars.decoded_vocab, self._info.vocab_size, self._info.eos_token_ids)
        log.info("CPU engine loaded %s (%s, %d threads)", self._info.path, dtype, torch.get_num_threads())

    def _start_batched(self, dtype: torch.dtype) -> None:
        from runtime.engines.cpu.kv_cache import KVPool
        from runtime.engines.cpu.model import DecoderModel
        from runtime.engines.cpu.scheduler import STEP_TOKENS, BatchScheduler

        model = DecoderModel.load(self._info.path, self._info.config, dtype)
        adapters = {}
        for a in self._config.lora_adapters:  # every one read (a bad one stops the start), the first cap kept
            weights = model.load_adapter(a.name, a.path)
            if self._config.max_cpu_loras is None or len(adapters) < self._config.max_cpu_loras:
                adapters[a.name] = weights
        self._resident = OrderedDict.fromkeys(adapters)
        pool = KVPool(model.shape, dtype, self._config.kv_cache_mb * 2**20, self._config.kv_block_size)
        self._model = model
        self._scheduler = BatchScheduler(self, model, pool, self._config.max_running_requests or 256,
                                         step_tokens=self._config.chunked_prefill_size or STEP_TOKENS,
                                         prefix_sharing=not self._config.disable_radix_cache, adapters=adapters)
        if adapters:
            log.info("CPU engine: LoRA adapters %s, applied per sequence in the batched forward pass",
                     ", ".join(adapters))
        log.info("CPU engine: own %s model code, continuous batching; KV cache %d MB = %d tokens in blocks of %d; "
                 "batched matmuls on %s", self._info.config.model_type, self._config.kv_cache_mb,
                 pool.capacity_tokens, pool.block_size,
                 "oneDNN (weights also held reordered)" if model.packed else "MKL (no memory for a reordered copy)")

    async def close(self) -> None:
        self._closed = True
        for seq in list(self._by_rid.values()):
            seq.aborted = True
        for stop in list(self._waiting.values()):
            stop.set()
        self._inbox.put(None)
        if self._worker is not None:
            await asyncio.to_thread(self._worker.join, 10)

    @property
    def grammar_cache(self) -> GrammarCache | None:
        return self._grammars

    # -- requests --------------------------------------------------------------------------------------

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        if self._closed or self._worker is None or self._grammars is None:
            raise EngineUnavailable("The engine is not running.")
        self._check_adapter(request)
        mask = None
        if request.constraint is not None:  # each compile in a thread of its own (cpu/grammar.py)
            compiled = await self._grammar(request)
            if compiled is None:  # aborted while waiting for it
                yield Finished(FinishReason.ABORT, Usage(len(request.input_ids), 0, 0))
                return
            mask = GrammarMask(compiled, self._info.vocab_size)
        if self._closed:  # closed while compiling: the worker is gone
            raise EngineUnavailable("The engine is shutting down.")
        self._check_adapter(request)  # (unloaded while compiling)
        # An evicted adapter is loaded back first; again if another load evicted it before this request, not yet
        # registered, resumed (from the last check to the registration below there is no await).
        while request.adapter is not None and self._scheduler is not None and request.adapter not in self._resident:
            if not await self._adapter_loaded_back(request):  # aborted while waiting for it
                yield Finished(FinishReason.ABORT, Usage(len(request.input_ids), 0, 0))
                return
            if self._closed:  # closed meanwhile: the worker is gone
                raise EngineUnavailable("The engine is shutting down.")
            self._check_adapter(request)
        if request.adapter in self._resident:
            self._resident.move_to_end(request.adapter)
        seed = request.sampling.seed if request.sampling.seed is not None else secrets.randbits(63)
        seq = _Sequence(
            request=request,
            loop=asyncio.get_running_loop(),
            events=asyncio.Queue(),
            generator=torch.Generator().manual_seed(seed),
            mask=mask,
            detokenizer=IncrementalDetokenizer(self._info.tokenizer,
                                               skip_special_tokens=request.sampling.skip_special_tokens),
            tokens=list(request.input_ids),
            thinking=ThinkingTracker(request.thinking) if request.thinking is not None else None,
            outbox=self.outbox,
        )
        self._by_rid[request.rid] = seq
        self._inbox.put(seq)
        try:
            while True:
                event = await seq.events.get()
                if isinstance(event, Exception):
                    raise event
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            seq.aborted = True  # a consumer that stops listening (disconnect, cancel) frees the worker
            self._by_rid.pop(request.rid, None)
            if self._over_cap() and not self._closed:  # held beyond the cap while in use: trim now
                self._background(self._trim())

    def _background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # (a reference, so the task is not collected mid-way)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # (its failure is logged where raised)

    async def _grammar(self, request: EngineRequest) -> Any:
        """The request's compiled grammar, or None if abort() came first (a compile can run for a minute)."""
        assert self._grammars is not None and request.constraint is not None
        compiling = asyncio.ensure_future(self._grammars.get(request.constraint))
        try:
            await self._unless_aborted(request.rid, compiling)
        finally:
            if not compiling.done():
                compiling.cancel()  # this request's wait only: the compile goes on for the cache
        return compiling.result() if compiling.done() and not compiling.cancelled() else None

    async def _unless_aborted(self, rid: str, work: asyncio.Future) -> bool:
        """Wait until `work` is done (True) or abort(rid) comes first (False); `work` is left as it is."""
        stop = self._waiting[rid] = asyncio.Event()
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((work, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            self._waiting.pop(rid, None)
        return work.done()

    def _check_adapter(self, request: EngineRequest) -> None:
        if request.adapter is not None and request.adapter not in self._adapters:
            raise NotFound(f"The LoRA adapter {request.adapter!r} is not loaded.", param="model")

    # -- LoRA adapters loaded and unloaded while serving -----------------------------------------------

    async def load_adapter(self, adapter: LoraAdapter) -> None:
        """Load a PEFT adapter and serve it under its name (vLLM's /v1/load_lora_adapter); InvalidRequest when
        it is already loaded or cannot be applied."""
        if self._scheduler is None:
            raise InvalidRequest("Loading a LoRA adapter while serving needs the CPU engine's own model code; this "
                                 "model runs on the transformers path, where adapters are named at start "
                                 "(--lora-modules).", param="lora_path")
        async with self._updates():
            if adapter.name in self._adapters:
                raise InvalidRequest(f"The LoRA adapter {adapter.name!r} is already loaded.", param="lora_name")
            if adapter.name in self._unloading:
                raise InvalidRequest(f"The LoRA adapter {adapter.name!r} is still being unloaded (its running "
                                     "requests are finishing); load it again once that is done.", param="lora_name")
            try:
                check_ranks([adapter], self._config.max_lora_rank)
                weights = await asyncio.to_thread(self._model.load_adapter, adapter.name, adapter.path)
            except Exception as exc:  # a path the client gave: whatever is wrong with it is theirs to fix
                raise InvalidRequest(f"The LoRA adapter {adapter.name!r} cannot be loaded: {exc}",
                                     param="lora_path") from None
            await self._hold_weights(adapter.name, weights)
            self._adapters[adapter.name] = adapter.path
        log.info("CPU engine: LoRA adapter %s loaded from %s", adapter.name, adapter.path)

    async def _adapter_loaded_back(self, request: EngineRequest) -> bool:
        """Wait until the request's evicted adapter is loaded back (False: abort() came first). The loading runs
        shielded: a request that goes away meanwhile leaves the weights and their bookkeeping consistent."""
        assert request.adapter is not None
        loading = asyncio.ensure_future(self._load_back(request.adapter))
        try:
            if not await self._unless_aborted(request.rid, loading):
                return False
        finally:
            if not loading.done():
                self._background(loading)  # (finishes on its own)
        loading.result()  # (its error, if any: NotFound if unloaded meanwhile, EngineFailure)
        return True

    async def _load_back(self, name: str) -> None:
        async with self._updates():
            if name not in self._adapters:
                raise NotFound(f"The LoRA adapter {name!r} is not loaded.", param="model")
            if name in self._resident:  # (another request loaded it back meanwhile)
                return
            try:
                weights = await asyncio.to_thread(self._model.load_adapter, name, self._adapters[name])
            except Exception as exc:  # its files changed or went away since it was loaded
                log.exception("CPU engine: LoRA adapter %s could not be loaded back", name)
                raise EngineFailure(f"The LoRA adapter {name!r} could not be loaded back from its path: "
                                    f"{exc}") from None
            await self._hold_weights(name, weights)
            log.info("CPU engine: LoRA adapter %s loaded back (--max-cpu-loras %s)", name, self._config.max_cpu_loras)

    def _over_cap(self) -> bool:
        return self._config.max_cpu_loras is not None and len(self._resident) > self._config.max_cpu_loras

    async def _trim(self) -> None:
        async with self._updates():
            await self._evict_over_cap(keep=None)

    async def _hold_weights(self, name: str, weights: Any) -> None:
        """Give the scheduler an adapter's weights, then evict the least recently used adapters nobody is using
        until at most --max-cpu-loras are held (under the updates lock)."""
        # Marked held before the hand-off: the worker takes its inbox in order, so a sequence queued after
        # this task finds the weights, and a caller cancelled while waiting leaves the bookkeeping right.
        self._resident[name] = None
        self._resident.move_to_end(name)
        await self._on_worker(lambda: self._scheduler.adapters.__setitem__(name, weights))
        await self._evict_over_cap(keep=name)

    async def _evict_over_cap(self, keep: str | None) -> None:
        cap = self._config.max_cpu_loras
        tried: set[str] = {keep} if keep is not None else set()
        while self._over_cap():
            in_use = {seq.request.adapter for seq in self._by_rid.values()}
            victim = next((n for n in self._resident if n not in tried and n not in in_use), None)
            if victim is None:  # every other one is in use: held beyond the cap until one is free
                log.info("CPU engine: %d LoRA adapters held (--max-cpu-loras %d): the others are in use",
                         len(self._resident), cap)
                return
            tried.add(victim)
            del self._resident[victim]  # (a request naming it from now on waits for this lock, then loads it back)
            if await self._on_worker(lambda victim=victim: self._drop_adapter_if_unused(victim)):
                log.info("CPU engine: LoRA adapter %s evicted (least recently used; --max-cpu-loras %d)", victim, cap)
            else:  # an abandoned sequence of it is still in the scheduler: kept for now
                self._resident[victim] = None
                self._resident.move_to_end(victim, last=False)

    async def unload_adapter(self, name: str) -> None:
        """Stop serving an adapter: new requests naming it get 404 at once, running ones finish first (as
        SGLang's unload waits for them), then its weights and its prefix tree are freed."""
        if self._scheduler is None:
            raise InvalidRequest("Unloading a LoRA adapter needs the CPU engine's own model code; this model runs on "
                                 "the transformers path.", param="lora_name")
        async with self._updates():
            if name not in self._adapters:
                raise NotFound(f"The LoRA adapter {name!r} is not loaded.", param="lora_name")
            del self._adapters[name]
            self._resident.pop(name, None)
            self._unloading.add(name)  # (a load of this name waits for the end: no reuse of its old prefixes)
        try:
            # Its running requests finish without the lock, so other adapters load (back) meanwhile.
            while any(seq.request.adapter == name for seq in self._by_rid.values()):
                await asyncio.sleep(0.02)
            async with self._updates():
                while not await self._on_worker(lambda: self._drop_adapter_if_unused(name)):
                    await asyncio.sleep(0.02)
        finally:
            self._unloading.discard(name)
        log.info("CPU engine: LoRA adapter %s unloaded", name)

    def _drop_adapter_if_unused(self, name: str) -> bool:
        """On the worker: free the adapter unless the scheduler still holds one of its sequences. A consumer that
        went away (a client's disconnect) leaves its sequence there, aborted but still locking the adapter's
        prefix blocks, until the worker's next pass drops it; the caller then tries again."""
        assert self._scheduler is not None
        if any(seq.request.adapter == name for seq in (*self._scheduler.running, *self._scheduler.waiting)):
            return False
        self._scheduler.drop_adapter(name)
        return True

    def _updates(self) -> asyncio.Lock:
        if self._adapter_updates is None:
            self._adapter_updates = asyncio.Lock()
        return self._adapter_updates

    async def _on_worker(self, fn: Any) -> Any:
        """Run `fn` on the worker thread between two steps."""
        if self._closed:
            raise EngineUnavailable("The engine is shutting down.")
        task = WorkerTask(fn, asyncio.get_running_loop())
        self._inbox.put(task)
        return await task.future

    async def abort(self, rid: str) -> None:
        if rid in self._waiting:
            self._waiting[rid].set()
        seq = self._by_rid.get(rid)
        if seq is not None:
            seq.aborted = True

    # -- the worker thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        if self._scheduler is not None:
            self._scheduler.run(self._inbox)
            return
        active: list[_Sequence] = []
        while True:
            try:
                incoming = self._inbox.get(block=not active)
            except queue.Empty:
                incoming = False
            while incoming is not False:
                if incoming is None:
                    for seq in active:
                        self._finish(seq, FinishReason.ABORT)
                    self._drain_inbox()
                    return
                active.append(incoming)
                try:
                    incoming = self._inbox.get_nowait()
                except queue.Empty:
                    incoming = False
            self.running = len(active)
            for seq in list(active):
                try:
                    done = self._step(seq)
                except Exception as exc:  # one request's failure never takes the worker down
                    fail(seq, exc)
                    done = True
                if done:
                    active.remove(seq)
            self.running = len(active)

    def _drain_inbox(self) -> None:
        """After close: whatever was still queued ends with an abort rather than waiting forever."""
        while True:
            try:
                seq = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(seq, WorkerTask):
                seq.cancel()
            elif seq is not None:
                self._finish(seq, FinishReason.ABORT)

    @torch.inference_mode()
    def _step(self, seq: _Sequence) -> bool:
        """Advance one sequence by a prefill chunk or one token. True when it has finished."""
        if seq.aborted:
            self._finish(seq, FinishReason.ABORT)
            return True
        prompt = seq.request.input_ids
        if seq.cache is None:
            if not seq.request.prompt_logprobs:  # (scoring needs every prompt position's logits: no cache)
                seq.cached_tokens, seq.cache = self._prefix_cache.lookup(prompt, seq.request.adapter)
            seq.computed = seq.cached_tokens
            if seq.cache is None:
                from transformers import DynamicCache

                seq.cache = DynamicCache()
        if seq.computed < len(prompt):
            start = seq.computed
            chunk = prompt[start : start + PREFILL_CHUNK]
            logits = self._forward(seq, list(chunk))
            if seq.request.prompt_logprobs:
                self._gather_prompt_logprobs(seq, start, logits.float())
            logits = logits[-1].float()
            seq.computed += len(chunk)
            if seq.computed < len(prompt):
                return False
            if seq.request.prompt_logprobs:
                seq.emit(PromptLogprobs(tuple(seq.prompt_logprobs)))
            if seq.request.sampling.max_new_tokens == 0:  # scoring only
                self._finish(seq, FinishReason.LENGTH)
                return True
        else:
            logits = self._forward(seq, [seq.generated[-1]])[-1].float()
        return self._choose(seq, logits)

    def _forward(self, seq: _Sequence, ids: list[int]) -> torch.Tensor:
        """The logits at every position of `ids`, one row each, in the model's dtype."""
        with _adapter(self._model, seq.request.adapter):
            out = self._model(input_ids=torch.tensor([ids]), past_key_values=seq.cache, use_cache=True)
        seq.cache = out.past_key_values
        return out.logits[0]

    def _gather_prompt_logprobs(self, seq: _Sequence, start: int, logits: torch.Tensor) -> None:
        """Row j of a prefill chunk's logits predicts prompt token start + j + 1: its raw log-probability."""
        assert self._grammars is not None
        prompt, vocab = seq.request.input_ids, self._grammars.decoded_vocab
        top = seq.request.prompt_top_logprobs
        if top is None:
            top = seq.request.sampling.logprobs or 0
        if start == 0:
            seq.prompt_logprobs.append(TokenLogprob.of(vocab, prompt[0], 0.0))
        rows = min(len(logits), len(prompt) - start - 1)
        if rows > 0:
            distributions = torch.log_softmax(logits[:rows, : self._info.vocab_size], dim=-1)
            for j in range(rows):
                seq.prompt_logprobs.append(token_logprob(prompt[start + j + 1], distributions[j], top, vocab))

    def _choose(self, seq: _Sequence, logits: torch.Tensor) -> bool:
        params = seq.request.sampling
        eos = self._info.eos_token_ids
        if params.ignore_eos and seq.mask is None:
            logits[list(eos)] = float("-inf")
        elif len(seq.generated) < params.min_new_tokens and seq.mask is None:  # (a grammar decides its own end)
            logits[list({*eos, *params.stop_token_ids})] = float("-inf")
        if params.penalised:  # the history tensor is built only when a penalty needs it (the hot path)
            logits = apply_penalties(logits, torch.tensor(seq.generated, dtype=torch.long), params)
        assert self._utf8 is not None
        logits[: self._info.vocab_size].masked_fill_(self._utf8.forbidden(seq.pending_bytes), float("-inf"))
        if seq.mask is not None:
            seq.mask.apply(logits)
        if params.logit_bias:  # after the mask, as SGLang adds it (a forbidden token stays forbidden)
            ids, biases = zip(*params.logit_bias)
            logits[list(ids)] += torch.tensor(biases, dtype=logits.dtype)
        if params.allowed_token_ids:  # vLLM's: only these, within what the mask allows (else the mask's choice)
            allowed = list(params.allowed_token_ids)
            kept = logits[allowed]
            if torch.isfinite(kept).any():
                logits.fill_(float("-inf"))
                logits[allowed] = kept
        forced = seq.thinking.forced() if seq.thinking is not None else None
        if forced is not None:  # the thinking budget is spent (or thinking must open): nothing else may come
            logits.fill_(float("-inf"))
            logits[forced] = 0.0
        distribution = log_distribution(logits[: self._info.vocab_size], params) if params.logprobs is not None else None
        token = sample(logits, params, seq.generator)
        if seq.thinking is not None:
            seq.thinking.push(token)
        seq.pending_bytes = self._utf8.advance(seq.pending_bytes, token)
        if seq.mask is not None and not seq.mask.accept(token):
            log.error("grammar rejected sampled token %d for %s", token, seq.request.rid)
            raise RuntimeError("grammar rejected a sampled token")
        seq.generated.append(token)
        if seq.request.sampling.return_token_ids:
            seq.emit(TokenIds((token,)))
        if distribution is not None:
            assert params.logprobs is not None and self._grammars is not None
            seq.emit(Logprobs((token_logprob(token, distribution, params.logprobs, self._grammars.decoded_vocab,
                                             params.logprob_token_ids),)))
        if token in eos and not params.ignore_eos or (seq.mask is not None and seq.mask.terminated):
            self._finish(seq, FinishReason.STOP)
            return True
        if token in params.stop_token_ids:
            self._finish(seq, FinishReason.STOP, matched=self._info.tokenizer.decode([token]))
            return True
        seq.untold += 1
        text = seq.detokenizer.push(token)
        if text:  # (empty while a character is unfinished: the token counts in the delta that shows it)
            seq.emit(TextDelta(text, seq.untold))
            seq.untold = 0
        total = len(seq.request.input_ids) + len(seq.generated)
        limit = params.max_new_tokens
        if (limit is not None and len(seq.generated) >= limit) or total >= self._info.context_length:
            self._finish(seq, FinishReason.LENGTH)
            return True
        return False

    def _finish(self, seq: _Sequence, reason: FinishReason, *, matched: str | None = None) -> None:
        if reason is not FinishReason.ABORT:
            tail = seq.detokenizer.flush()
            if tail:
                seq.emit(TextDelta(tail, seq.untold))
        usage = Usage(len(seq.request.input_ids), len(seq.generated), seq.cached_tokens,
                      seq.thinking.used if seq.thinking is not None else 0)
        seq.emit(Finished(reason, usage, matched))
        if reason is not FinishReason.ABORT and seq.cache is not None and seq.generated:
            # The cache holds the prompt and every generated token but the last (never fed back).
            kept = seq.request.input_ids + tuple(seq.generated[:-1])
            if seq.cache.get_seq_length() == len(kept):
                self._prefix_cache.store(kept, seq.cache, seq.request.adapter)
        seq.cache = None


def _with_peft_adapters(model: Any, adapters: tuple[LoraAdapter, ...]) -> Any:
    """The transformers path's model wrapped in peft's PeftModel, every adapter loaded under its name."""
    from peft import PeftModel

    first, *rest = adapters
    wrapped = PeftModel.from_pretrained(model, first.path, adapter_name=first.name, is_trainable=False)
    for adapter in rest:
        wrapped.load_adapter(adapter.path, adapter_name=adapter.name, is_trainable=False)
    log.info("CPU engine: LoRA adapters %s through peft, one per forward pass", ", ".join(a.name for a in adapters))
    return wrapped.eval()


def _adapter(model: Any, name: str | None) -> Any:
    """The forward pass's adapter on the transformers path: `name`'s, or none (the base model) when None."""
    if not hasattr(model, "disable_adapter"):  # no adapters loaded: the base model
        return contextlib.nullcontext()
    if name is None:
        return model.disable_adapter()
    model.set_adapter(name)
    return contextlib.nullcontext()
