"""Continuous batching for the CPU engine: every step is one forward pass over all running sequences.

A step (nano-vllm's `step()`, SGLang's mixed chunked prefill):
1. take in new requests; drop aborted ones;
2. admit waiting sequences while the KV pool can hold their prompts (matching each against the radix tree
   first: the shared prefix is read in place, not recomputed);
3. schedule one token of every decoding sequence, then chunks of prompts up to the step's token budget;
4. give each scheduled sequence blocks for its new tokens (evicting unused tree blocks, or preempting the
   youngest sequence back to the queue when even that is not enough);
5. one forward pass over all those tokens; logits only for the rows that sample (or score the prompt);
6. per sequence: sampling, grammar, logprobs, stops (the engine's `_choose`), exactly as one at a time;
7. finished sequences hand their blocks to the radix tree for later requests.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from typing import TYPE_CHECKING

import torch

from runtime.engines.cpu.kv_cache import NULL_BLOCK, KVPool, RadixCache
from runtime.engines.cpu.lora import LoraWeights
from runtime.engines.cpu.worker_task import WorkerTask
from runtime.engines.cpu.model import Batch, DecoderModel
from runtime.errors import ContextLengthExceeded, EngineFailure, Overloaded
from runtime.types import FinishReason, PromptLogprobs

from runtime.engines.cpu.engine import fail

if TYPE_CHECKING:
    from runtime.engines.cpu.engine import CpuEngine, _Sequence

log = logging.getLogger(__name__)

# Tokens per forward pass: decodes first, then prompt chunks up to this (vLLM's max_num_batched_tokens, SGLang's
# chunked_prefill_size; both default to about this on small machines). A longer prompt is split, so it holds the
# others up one bounded step at a time. Prompts that arrive together are prefilled together rather than one
# chunk per step: with 512, 16 simultaneous 128-token prompts took 4 steps and the first 4 sequences decoded
# through 3 prefill steps, for no gain in throughput (bench/RESULTS.md section 0: TPOT p50 at c=16 752 ms
# with 512, 432 ms with 2048, on a shared machine).
STEP_TOKENS = 2048
MIN_PREFILL = 32  # prompt tokens a step takes even when decodes fill the budget, so prompts always progress
# Shorter shared prefixes are recomputed: the saving is nil, and a prompt computed in one piece gives the same
# floats every time (a cache hit computes its last tokens in a different-shaped matmul: logprobs move by 1e-6).
MIN_MATCH = 16
KV_WAIT_SECONDS = 30.0  # a request that waits this long for KV memory is refused with 429
# Decoding sequences with at least this many tokens of context attend to the pool in place, one at a time; shorter
# ones are gathered and attend together in one call, which costs less than a call each while copies are small
# (at 16 sequences the crossover lies between 64 and 256 tokens; 128 was slower: bench/RESULTS.md section 0).
IN_PLACE_ATTENTION_MIN = 256
# ...unless its slots are scattered in runs shorter than this on average (a pool fragmented by eviction): a call
# per run then costs more than copying its keys (two calls a run, ~10 us each, against ~5 GB/s of copying).
MIN_RUN_TOKENS = 64


class BatchScheduler:
    def __init__(self, engine: "CpuEngine", model: DecoderModel, pool: KVPool, max_running: int, *,
                 step_tokens: int = STEP_TOKENS, prefix_sharing: bool = True,
                 adapters: dict[str, LoraWeights] | None = None) -> None:
        self.engine = engine
        self.adapters = adapters or {}  # LoRA adapters by name (lora.py), applied per row in the forward pass
        self.step_tokens = step_tokens
        self.prefix_sharing = prefix_sharing
        self.model = model
        self.pool = pool
        self.radix = RadixCache(pool)
        self.max_running = max_running
        self.waiting: deque[_Sequence] = deque()
        self.running: list[_Sequence] = []
        self._offsets = torch.arange(pool.block_size)

    # -- the loop --------------------------------------------------------------------------------------

    def run(self, inbox: "queue.SimpleQueue[_Sequence | None]") -> None:
        while True:
            idle = not self.running
            try:
                incoming = inbox.get(timeout=0.05 if self.waiting else None) if idle else inbox.get_nowait()
            except queue.Empty:
                incoming = False
            while incoming is not False:
                if incoming is None:
                    self._shutdown(inbox)
                    return
                if isinstance(incoming, WorkerTask):  # (loading or unloading an adapter)
                    incoming.run()
                else:
                    incoming.waiting_since = time.monotonic()
                    self.waiting.append(incoming)
                try:
                    incoming = inbox.get_nowait()
                except queue.Empty:
                    incoming = False
            with self.engine.outbox.holding():  # this iteration's events reach the loop in one hand-off
                self._drop_aborted()
                self._admit()
                self.engine.running = len(self.running) + len(self.waiting)
                if self.running:
                    try:
                        self.step()
                    except Exception:  # a failed forward pass fails the sequences in it, never the worker
                        log.exception("CPU engine step failed")
                        for seq in list(self.running):
                            seq.emit(EngineFailure("The engine failed while generating."))
                            self._retire(seq)
                self.engine.running = len(self.running) + len(self.waiting)

    def drop_adapter(self, name: str) -> None:
        """Forget an unloaded adapter's weights and its prefix tree (no sequence of it is left)."""
        self.adapters.pop(name, None)
        self.radix.drop_tree(name)

    def _shutdown(self, inbox: "queue.SimpleQueue[_Sequence | None]") -> None:
        for seq in [*self.running, *self.waiting]:
            self.engine._finish(seq, FinishReason.ABORT)
        self.running.clear()
        self.waiting.clear()
        self.engine._drain_inbox()

    def _drop_aborted(self) -> None:
        for seq in [s for s in self.waiting if s.aborted]:
            self.waiting.remove(seq)
            if seq.chain or seq.blocks:
                self._release(seq)
            self.engine._finish(seq, FinishReason.ABORT)
        for seq in [s for s in self.running if s.aborted]:
            self.engine._finish(seq, FinishReason.ABORT)
            self._retire(seq)

    # -- admission -------------------------------------------------------------------------------------

    def _admit(self) -> None:
        bs = self.pool.block_size
        while self.waiting and len(self.running) < self.max_running:
            seq = self.waiting[0]
            tokens = seq.tokens
            blocks_needed = -(-len(tokens) // bs)
            if blocks_needed + 1 > self.pool.num_blocks - 1:
                self.waiting.popleft()
                seq.emit(ContextLengthExceeded(
                    f"This request needs {len(tokens)} tokens of KV cache and the whole cache holds "
                    f"{self.pool.capacity_tokens - bs} (raise --kv-cache-mb).",
                    prompt_tokens=len(tokens), max_context=self.pool.capacity_tokens - bs))
                continue
            reuse = self.prefix_sharing and not (seq.request.prompt_logprobs and not seq.prompt_done)
            chain, partial, partial_n = (([], None, 0) if not reuse
                                         else self.radix.match(tokens, len(tokens) - 1, seq.request.adapter))
            if len(chain) * bs + partial_n < MIN_MATCH:
                chain, partial, partial_n = [], None, 0
            # Room for the rest of the prompt, and a block of headroom for each running sequence's next token.
            unlocked_in_chain = sum(1 for n in chain if n.refs == 0)
            need = blocks_needed - len(chain) + len(self.running)
            if need > self.radix.available_blocks - unlocked_in_chain:
                if time.monotonic() - seq.waiting_since > KV_WAIT_SECONDS:
                    self.waiting.popleft()
                    seq.emit(Overloaded("The KV cache is full; try again shortly.", retry_after=5.0))
                    continue
                return
            self.waiting.popleft()
            self.radix.lock(chain)
            seq.chain, seq.blocks = chain, [n.block for n in chain]
            seq.computed = len(chain) * bs
            if partial is not None:
                self.radix.lock([partial])  # not evicted for the block it is copied into
                block = self.radix.allocate(1, after=chain[-1].block if chain else None)
                assert block is not None  # room was checked above
                self.pool.copy_prefix(partial.block, block[0], partial_n)
                self.radix.unlock([partial])
                seq.blocks.append(block[0])
                seq.computed += partial_n
            if not seq.admitted:
                seq.cached_tokens = seq.computed
                seq.admitted = True
            self.radix.hits += seq.computed
            self.running.append(seq)

    # -- one step --------------------------------------------------------------------------------------

    def _schedule(self) -> list[tuple["_Sequence", int]]:
        decodes = [s for s in self.running if len(s.tokens) - s.computed == 1]
        prefills = [s for s in self.running if len(s.tokens) - s.computed > 1]
        plan = [(s, 1) for s in decodes]
        budget = max(self.step_tokens - len(decodes), MIN_PREFILL)
        for seq in prefills:
            if budget <= 0:
                break
            n = min(budget, len(seq.tokens) - seq.computed)
            plan.append((seq, n))
            budget -= n
        return plan

    def _reserve(self, plan: list[tuple["_Sequence", int]]) -> list[tuple["_Sequence", int]]:
        """Blocks for every planned token; when the pool is exhausted, the youngest sequence goes back to the
        queue (its blocks to the tree, so most of it is a cache hit when it resumes)."""
        bs = self.pool.block_size
        for seq, n in plan:
            if seq not in self.running:
                continue
            while True:
                missing = -(-(seq.computed + n) // bs) - len(seq.blocks)
                if missing <= 0:
                    break
                blocks = self.radix.allocate(missing, after=seq.blocks[-1] if seq.blocks else None)
                if blocks is not None:
                    seq.blocks.extend(blocks)
                    break
                victim = self.running[-1]
                if victim is seq and len(self.running) == 1:
                    self.engine._finish(seq, FinishReason.LENGTH)  # alone and still too long for the whole cache
                    self._retire(seq)
                    break
                self._preempt(victim if victim is not seq else self.running[-2])
        return [(s, n) for s, n in plan if s in self.running]

    def step(self) -> None:
        plan = self._reserve(self._schedule())
        if not plan:
            return
        bs, offsets = self.pool.block_size, self._offsets
        ids: list[int] = []
        positions: list[int] = []
        write: list[torch.Tensor] = []
        decode_rows: list[int] = []
        decode_tables: list[list[int]] = []
        decode_lengths: list[int] = []
        chunks = []
        views: list[tuple[int, list[tuple[int, int]] | torch.Tensor]] = []
        first_rows: list[int] = []
        sample_rows: list[int] = []  # the row whose logits pick each planned sequence's next token (or -1)
        score: list[tuple[int, int]] = []  # (first row, rows) of chunks scoring their prompt
        adapter_rows: dict[str, list[int]] = {}  # the rows each LoRA adapter applies to
        for seq, n in plan:
            row, start = len(ids), seq.computed
            first_rows.append(row)
            ids.extend(seq.tokens[start : start + n])
            positions.extend(range(start, start + n))
            table = torch.tensor(seq.blocks, dtype=torch.long)
            slots = (table[:, None] * bs + offsets).view(-1)
            write.append(slots[start : start + n])
            if n == 1 and start + 1 >= IN_PLACE_ATTENTION_MIN:
                runs = slot_runs(seq.blocks, start + 1, bs)
                views.append((row, runs if len(runs) * MIN_RUN_TOKENS <= start + 1 else slots[: start + 1]))
            elif n == 1:
                decode_rows.append(row)
                decode_tables.append(seq.blocks)
                decode_lengths.append(start + 1)
            else:
                chunks.append((row, n, slots[: start + n], start))
            samples = start + n == len(seq.tokens)
            sample_rows.append(row + n - 1 if samples else -1)
            if seq.request.prompt_logprobs and not seq.prompt_done:
                score.append((row, n))
            if seq.request.adapter is not None:
                adapter_rows.setdefault(seq.request.adapter, []).extend(range(row, row + n))
        batch = Batch(torch.tensor(positions), torch.cat(write), None, None, None, chunks, views,
                      [(self.adapters[name], torch.tensor(rows)) for name, rows in adapter_rows.items()])
        if decode_rows:
            width = max(len(t) for t in decode_tables)
            table = torch.tensor([t + [NULL_BLOCK] * (width - len(t)) for t in decode_tables], dtype=torch.long)
            lengths = torch.tensor(decode_lengths)
            slots = (table[:, :, None] * bs + offsets).view(len(decode_tables), -1)[:, : int(lengths.max())]
            mask = torch.arange(slots.shape[1])[None, :] < lengths[:, None]
            batch.decode_rows = torch.tensor(decode_rows)
            batch.decode_slots = torch.where(mask, slots, 0)  # masked slots read the zeroed null block
            batch.decode_mask = mask[:, None, None, :]
        hidden = self.model.forward(torch.tensor(ids), batch, self.pool.k, self.pool.v)

        wanted = sorted({r for r in sample_rows if r >= 0} | {r for first, n in score for r in range(first, first + n)})
        where = {r: i for i, r in enumerate(wanted)}
        logits = self.model.logits(hidden[wanted]).float() if wanted else None
        for (seq, n), row0, sample_row in zip(plan, first_rows, sample_rows):
            start = seq.computed
            seq.computed += n
            try:
                if seq.request.prompt_logprobs and not seq.prompt_done:
                    assert logits is not None
                    self.engine._gather_prompt_logprobs(seq, start, logits[[where[r] for r in range(row0, row0 + n)]])
                if not seq.prompt_done and seq.computed >= len(seq.request.input_ids):
                    seq.prompt_done = True
                    self._share_prompt(seq)
                    if seq.request.prompt_logprobs:
                        seq.emit(PromptLogprobs(tuple(seq.prompt_logprobs)))
                    if seq.request.sampling.max_new_tokens == 0:  # scoring only
                        self.engine._finish(seq, FinishReason.LENGTH)
                        self._retire(seq)
                        continue
                if sample_row < 0:
                    continue
                assert logits is not None
                done = self.engine._choose(seq, logits[where[sample_row]].clone())
                seq.tokens.append(seq.generated[-1])
            except Exception as exc:  # one request's failure never takes the others down
                fail(seq, exc)
                done = True
            if done:
                self._retire(seq)

    # -- giving memory back ----------------------------------------------------------------------------

    def _share_prompt(self, seq: "_Sequence") -> None:
        """Put a just-computed prompt's whole blocks in the tree now, so requests arriving while this one
        generates share them (an agent's system prompt, the n choices of one request)."""
        if not self.prefix_sharing:
            return
        self.radix.insert(seq.tokens[: seq.computed], seq.blocks, seq.chain, partial_tail=False, keep_tail=True,
                          adapter=seq.request.adapter)

    def _release(self, seq: "_Sequence") -> None:
        if not self.prefix_sharing:
            self.pool.free(seq.blocks)
            seq.blocks = []
            return
        self.radix.insert(seq.tokens[: seq.computed], seq.blocks, seq.chain, partial_tail=True,
                          adapter=seq.request.adapter)
        self.radix.unlock(seq.chain)
        seq.chain, seq.blocks = [], []

    def _retire(self, seq: "_Sequence") -> None:
        if seq in self.running:
            self.running.remove(seq)
        self._release(seq)

    def _preempt(self, seq: "_Sequence") -> None:
        log.info("KV cache full: %s goes back to the queue (%d tokens to recompute, mostly from the prefix cache)",
                 seq.request.rid, seq.computed)
        self.running.remove(seq)
        self._release(seq)
        seq.computed = 0
        if not seq.prompt_done:
            seq.prompt_logprobs.clear()  # gathered again from the first chunk
        seq.waiting_since = time.monotonic()
        self.waiting.appendleft(seq)


def slot_runs(blocks: list[int], length: int, block_size: int) -> list[tuple[int, int]]:
    """The first `length` slots of a sequence's blocks as runs of consecutive pool slots: (first slot, count)."""
    runs: list[list[int]] = []
    for block in blocks[: -(-length // block_size)]:
        slot = block * block_size
        if runs and runs[-1][0] + runs[-1][1] == slot:
            runs[-1][1] += block_size
        else:
            runs.append([slot, block_size])
    runs[-1][1] -= sum(n for _, n in runs) - length
    return [(a, n) for a, n in runs]
