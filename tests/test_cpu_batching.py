"""The CPU engine's batched path: our model code gives transformers' greedy tokens, the radix tree shares and
evicts blocks correctly, and a small KV budget preempts, refuses and still answers the same."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
import torch

from runtime.engines import EngineConfig, create_engine
from runtime.engines.cpu.kv_cache import KVPool, RadixCache
from runtime.engines.cpu import kv_cache, scheduler
from runtime.engines.cpu.model import Batch, DecoderModel, Shape, unsupported_reason
from runtime.errors import ContextLengthExceeded, EngineFailure
from runtime.model import load_model_info
from runtime.types import EngineRequest, Finished, FinishReason, Logprobs, SamplingParams, TextDelta


def greedy(ids, n=16) -> EngineRequest:
    return EngineRequest(uuid.uuid4().hex, tuple(ids),
                         SamplingParams(temperature=0.0, max_new_tokens=n, ignore_eos=True, logprobs=0))


async def tokens_of(engine, req) -> tuple[list[bytes], str, Finished]:
    """Each generated token's bytes (from its logprob entry), the text, and the Finished event."""
    tokens, text, finished = [], [], None
    async for event in engine.generate(req):
        if isinstance(event, Logprobs):
            tokens.extend(t.data for t in event.tokens)
        elif isinstance(event, TextDelta):
            text.append(event.text)
        else:
            finished = event
    return tokens, "".join(text), finished


async def started(model_dir, **config):
    info = load_model_info(str(model_dir))
    engine = create_engine("cpu", EngineConfig(str(model_dir), "m", **config), info)
    await engine.start()
    return engine, info


async def settled(engine) -> None:
    """Once every sequence has ended, every block is free or in the tree: none leaked."""
    while engine.running:
        await asyncio.sleep(0.01)
    assert accounted(engine._scheduler.radix)


def prompts_for(tokenizer, lengths) -> list[list[int]]:
    text = "def f(x):\n    return [y * 2 for y in range(x) if y % 3]\n# 北京今天天气怎么样\n"
    base = tokenizer.encode(text * 200)
    return [base[i : i + n] for i, n in enumerate(lengths)]


def compare_with_transformers(model_dir, lengths, new_tokens, **native_config):
    """Every prompt run at once on the batched path, and one at a time on the transformers path."""

    async def main():
        native, info = await started(model_dir, **native_config)
        prompts = prompts_for(info.tokenizer, lengths)
        try:
            together = await asyncio.gather(*(tokens_of(native, greedy(p, new_tokens)) for p in prompts))
            await settled(native)
        finally:
            await native.close()
        reference, _ = await started(model_dir, cpu_backend="transformers")
        try:
            alone = [await tokens_of(reference, greedy(p, new_tokens)) for p in prompts]
        finally:
            await reference.close()
        return together, alone

    together, alone = asyncio.run(main())
    for (tokens, text, finished), (ref_tokens, ref_text, _) in zip(together, alone):
        assert len(tokens) == new_tokens and finished.usage.completion_tokens == new_tokens
        assert tokens == ref_tokens and text == ref_text


def test_greedy_tokens_match_the_transformers_path(tiny_model_dir):
    # One prompt longer than a step's token budget (prefilled in chunks while the others decode), one of a
    # single token, the rest between.
    compare_with_transformers(tiny_model_dir, [1, 5, 17, 40, 64, 129, 300, 700], 24)


def test_small_kv_budget_preempts_and_answers_the_same(tiny_model_dir):
    # The tiny model takes 512 bytes a token: 1 MiB holds 2,048 tokens, less than these eight prompts need at once.
    compare_with_transformers(tiny_model_dir, [300, 310, 320, 330, 340, 350, 360, 370], 40, kv_cache_mb=1)


def test_aborting_one_sequence_leaves_the_others_untouched(tiny_model_dir):
    async def main():
        engine, info = await started(tiny_model_dir)
        try:
            prompts = prompts_for(info.tokenizer, [30, 300, 40])
            alone = [await tokens_of(engine, greedy(p, 20)) for p in prompts]
            doomed = greedy(prompts_for(info.tokenizer, [900])[0], 1000)

            async def abort_soon():
                await asyncio.sleep(0.3)
                await engine.abort(doomed.rid)

            *together, aborted, _ = await asyncio.gather(*(tokens_of(engine, greedy(p, 20)) for p in prompts),
                                                         tokens_of(engine, doomed), abort_soon())
            assert [t for t, _, _ in together] == [t for t, _, _ in alone]
            assert aborted[2].reason is FinishReason.ABORT
            await settled(engine)
        finally:
            await engine.close()

    asyncio.run(main())


def test_a_prompt_larger_than_the_whole_kv_budget_is_refused(tiny_model_dir):
    async def main():
        engine, info = await started(tiny_model_dir, kv_cache_mb=1)
        try:
            with pytest.raises(ContextLengthExceeded):
                await tokens_of(engine, greedy(prompts_for(info.tokenizer, [3000])[0]))
            tokens, _, _ = await tokens_of(engine, greedy(prompts_for(info.tokenizer, [100])[0]))  # still serving
            assert len(tokens) == 16
        finally:
            await engine.close()

    asyncio.run(main())


def test_agent_turns_reuse_the_whole_previous_turn(tiny_model_dir):
    """Turn 2 resends turn 1's prompt and answer: all of it but the new message is a hit, to the token."""

    async def main():
        engine, info = await started(tiny_model_dir)
        try:
            system = prompts_for(info.tokenizer, [203])[0]
            first = list(system) + info.tokenizer.encode("first question")
            _, _, finished = await tokens_of(engine, greedy(first, 21))
            while engine.running:  # the worker hands the blocks to the tree just after the last event
                await asyncio.sleep(0.01)
            held = only_path(engine._scheduler.radix)  # the prompt and the answer but its last token
            assert held[: len(first)] == first and len(held) == len(first) + 20
            second = held + [5] + info.tokenizer.encode(" next")  # (the answer's last token: any will do)
            _, _, finished2 = await tokens_of(engine, greedy(second, 5))
            assert finished.usage.cached_tokens == 0 and finished2.usage.cached_tokens == len(held)
            # Another session shares the system prompt, to the token, though it ends inside a block.
            _, _, other = await tokens_of(engine, greedy(list(system) + info.tokenizer.encode("other"), 3))
            assert other.usage.cached_tokens >= len(system)
        finally:
            await engine.close()

    asyncio.run(main())


def only_path(radix: RadixCache) -> list[int]:
    node, ids = radix.root, []
    while node.children:
        (node,) = node.children.values()
        ids.extend(node.key)
    return ids


def test_unsupported_architectures_take_the_transformers_path(tiny_model_dir, caplog):
    class Gpt2Config:
        model_type = "gpt2"

    assert "gpt2" in unsupported_reason(Gpt2Config())

    async def main():
        engine, info = await started(tiny_model_dir, cpu_backend="transformers")
        try:
            tokens, _, _ = await tokens_of(engine, greedy(info.tokenizer.encode("hello"), 4))
            assert len(tokens) == 4 and engine._scheduler is None
        finally:
            await engine.close()

    with caplog.at_level(logging.INFO, logger="runtime.engines.cpu.engine"):
        asyncio.run(main())
    assert "transformers path" in caplog.text


# -- the radix tree on its own -------------------------------------------------------------------------

def tree(blocks=9, block_size=4) -> RadixCache:
    shape = Shape(layers=1, hidden=8, heads=1, kv_heads=1, head_dim=2, eps=1e-6, vocab=10)
    budget = blocks * block_size * 2 * 2 * 4  # k and v, head_dim 2, float32
    return RadixCache(KVPool(shape, torch.float32, budget, block_size))


def finish(radix: RadixCache, tokens: list[int], chain=None, blocks=None) -> None:
    """What a sequence does: blocks for its tokens (after its matched chain), then hand them to the tree."""
    chain = list(chain or [])
    blocks = list(blocks or [n.block for n in chain])
    blocks += radix.allocate(-(-len(tokens) // radix.pool.block_size) - len(blocks))
    radix.insert(tokens, blocks, chain, partial_tail=True)
    radix.unlock(chain)


def accounted(radix: RadixCache) -> bool:
    return radix.pool.free_blocks + len(list(radix._nodes())) == radix.pool.num_blocks - 1


def test_blocks_are_placed_as_extents_that_can_grow(caplog):
    pool = tree(blocks=101, block_size=4).pool  # blocks 1..100 usable
    gap = kv_cache.GAP_BLOCKS
    assert pool.allocate(4) == [1, 2, 3, 4]  # the lowest free blocks: the memory in use stays compact
    assert pool.allocate(2, after=4) == [5, 6]  # growth follows the last block
    second = pool.allocate(3)
    assert second == [7 + gap, 8 + gap, 9 + gap]  # room left for the first one to grow into
    assert pool.allocate(1, after=second[-1]) == [second[-1] + 1]
    assert pool.free_blocks == 100 - 10
    # A full pool hands out what is left in pieces.
    rest = pool.allocate(pool.free_blocks)
    assert len(rest) == 90 and set(rest) | {1, 2, 3, 4, 5, 6, *second, second[-1] + 1} == set(range(1, 101))
    assert pool.allocate(1) is None and pool.allocate(0) == []
    pool.free([1, 2, 3, 4])
    assert pool.allocate(1, after=4) == [2]  # (5 is taken) no run has room for gaps: the middle of the largest
    with caplog.at_level(logging.ERROR):
        pool.free([second[0], second[0], 0])  # a block freed twice is never handed out twice
    assert "freed twice" in caplog.text and pool.free_blocks == 4


def test_slot_runs_join_consecutive_blocks_and_end_at_the_length():
    assert scheduler.slot_runs([3, 4, 5, 9, 1], 18, 4) == [(12, 12), (36, 4), (4, 2)]
    assert scheduler.slot_runs([7, 8], 5, 4) == [(28, 5)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_in_place_equals_gathered_attention(tiny_model_dir, dtype):
    """A decoding sequence attending to its keys where they lie (runs of the pool, any order) computes what the
    gathered path computes for it."""
    info = load_model_info(str(tiny_model_dir))
    model = DecoderModel.load(str(tiny_model_dir), info.config, dtype)
    s, bs = model.shape, 4
    torch.manual_seed(0)
    k_pool, v_pool = (torch.randn(s.kv_heads, 64 * bs, s.head_dim, dtype=dtype) for _ in "kv")
    tables = [[5, 6, 7, 30, 2, 3], [40], [11, 12, 13, 14, 15, 16, 17, 18]]
    lengths = [22, 3, 29]
    q = torch.randn(len(tables), s.heads * s.head_dim, dtype=dtype)
    width = max(len(t) for t in tables)
    padded = torch.tensor([t + [0] * (width - len(t)) for t in tables])
    slots = (padded[:, :, None] * bs + torch.arange(bs)).view(len(tables), -1)[:, : max(lengths)]
    mask = torch.arange(slots.shape[1])[None, :] < torch.tensor(lengths)[:, None]
    rows = torch.arange(len(tables))
    gathered = Batch(rows, rows, rows, torch.where(mask, slots, 0), mask[:, None, None, :], [])
    in_place = Batch(rows, rows, None, None, None, [],
                     [(i, scheduler.slot_runs(t, n, bs)) for i, (t, n) in enumerate(zip(tables, lengths))])
    assert [len(runs) for _, runs in in_place.views] == [3, 1, 1]
    alone = Batch(rows, rows, None, None, None, [], [(i, slots[i, :n]) for i, n in enumerate(lengths)])
    expected = model._attention(q, k_pool, v_pool, gathered)
    close = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(model._attention(q, k_pool, v_pool, in_place), expected, **close)
    torch.testing.assert_close(model._attention(q, k_pool, v_pool, alone), expected, **close)


def test_in_place_attention_gives_the_transformers_path_s_tokens(tiny_model_dir, monkeypatch):
    # Every decode step attends alone, in a pool small enough to preempt (so blocks come back fragmented), with
    # prefix sharing (a matched chain is a run of its own): in place where runs are long, gathered where not.
    monkeypatch.setattr(scheduler, "IN_PLACE_ATTENTION_MIN", 1)
    monkeypatch.setattr(scheduler, "MIN_RUN_TOKENS", 16)
    compare_with_transformers(tiny_model_dir, [1, 20, 300, 310, 320, 330, 340, 350, 360, 370], 40, kv_cache_mb=1)


def test_radix_matches_whole_blocks_then_part_of_one():
    radix = tree()
    finish(radix, list(range(10)))  # blocks [0..3] [4..7] and a partial leaf [8, 9]
    chain, partial, n = radix.match(list(range(9)) + [99], limit=9)
    assert [node.key for node in chain] == [(0, 1, 2, 3), (4, 5, 6, 7)] and partial.key == (8, 9) and n == 1
    chain, partial, n = radix.match([0, 1, 7], limit=2)
    assert chain == [] and partial.key == (0, 1, 2, 3) and n == 2
    assert accounted(radix) and radix.unlocked == 3


def test_radix_shares_duplicates_and_drops_covered_partial_leaves():
    radix = tree()
    finish(radix, list(range(6)))  # [0..3] and partial [4, 5]
    finish(radix, list(range(9)))  # same first block (its copy freed); [4..7] supersedes [4, 5]; partial [8]
    keys = sorted(node.key for node in radix._nodes())
    assert keys == [(0, 1, 2, 3), (4, 5, 6, 7), (8,)] and accounted(radix)


def test_radix_evicts_least_recently_used_unlocked_leaves_first():
    radix = tree(blocks=5)
    finish(radix, [1, 1, 1, 1, 2, 2, 2, 2])  # two blocks
    finish(radix, [3, 3, 3, 3, 4, 4, 4, 4])  # two more: the pool (4 usable blocks) is full
    chain, _, _ = radix.match([1, 1, 1, 1, 2, 2, 2, 2, 0], limit=8)
    radix.lock(chain)  # a running sequence reads the first prompt
    assert radix.allocate(2) is not None  # evicts the other one, leaf first
    assert sorted(n.key for n in radix._nodes()) == [(1, 1, 1, 1), (2, 2, 2, 2)]
    assert radix.allocate(1) is None  # what is locked stays
    radix.unlock(chain)
    assert radix.evict(2) == 2 and not list(radix._nodes())


@pytest.mark.slow
def test_default_model_greedy_tokens_match_the_transformers_path():
    """The real default model (converted once from its PyPI package): chat prompts run together on the
    batched path give the tokens the transformers path gives one at a time."""
    from runtime.model import DEFAULT_MODEL, resolve_model_path

    path = resolve_model_path(DEFAULT_MODEL)
    info = load_model_info(path)
    questions = ["What is the capital of France?", "Write a haiku about the sea.", "List three prime numbers.",
                 "Explain what a CPU cache is in one sentence.", "Translate 'good morning' into Spanish."]
    prompts = [info.tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=False) for q in questions]

    async def run(**config):
        engine, _ = await started(path, **config)
        try:
            if config:
                return [await tokens_of(engine, greedy(p, 24)) for p in prompts]
            return await asyncio.gather(*(tokens_of(engine, greedy(p, 24)) for p in prompts))
        finally:
            await engine.close()

    together = asyncio.run(run())
    alone = asyncio.run(run(cpu_backend="transformers"))
    assert "Paris" in together[0][1]
    assert [t for t, _, _ in together] == [t for t, _, _ in alone]


def test_small_steps_and_no_prefix_sharing_answer_the_same(tiny_model_dir):
    compare_with_transformers(tiny_model_dir, [3, 90, 250], 12, chunked_prefill_size=64, disable_radix_cache=True)


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "mistral"])
def test_other_families_match_the_transformers_path(tiny_model_dir, tmp_path, family):
    """Qwen2 (q/k/v biases), Qwen3 (q/k norms, head_dim apart from hidden / heads) and Mistral: tiny random
    checkpoints with the tiny model's tokenizer, greedy tokens against the transformers path."""
    import shutil

    import transformers

    target = tmp_path / family
    shutil.copytree(tiny_model_dir, target)
    for weights in target.glob("*.safetensors"):
        weights.unlink()
    vocab = load_model_info(str(tiny_model_dir)).config.vocab_size
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096, eos_token_id=0)
    config = {"qwen2": lambda: transformers.Qwen2Config(**common, tie_word_embeddings=True),
              "qwen3": lambda: transformers.Qwen3Config(**common, head_dim=32, tie_word_embeddings=False),
              "mistral": lambda: transformers.MistralConfig(**common, sliding_window=None)}[family]()
    torch.manual_seed(1)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, 1.0 if "embed" in name else 0.3)
            else:
                param.uniform_(0.5, 1.5)  # (norm weights away from 1, so their use is checked too)
    model.save_pretrained(str(target))
    assert unsupported_reason(config) is None
    compare_with_transformers(target, [7, 60, 200], 12)


def test_one_sequence_failing_leaves_the_others_untouched(tiny_model_dir):
    # A logit_bias of -inf on every token leaves the sampler nothing to draw: that sequence fails with the
    # sampler's own message, in the same batch as others that answer as they would alone.
    async def main():
        engine, info = await started(tiny_model_dir)
        try:
            prompts = prompts_for(info.tokenizer, [30, 40])
            alone = [await tokens_of(engine, greedy(p, 12)) for p in prompts]
            nothing = tuple((i, float("-inf")) for i in range(info.vocab_size))
            doomed = EngineRequest(uuid.uuid4().hex, tuple(prompts[0]),
                                   SamplingParams(temperature=0.0, max_new_tokens=12, logit_bias=nothing))
            *together, failed = await asyncio.gather(*(tokens_of(engine, greedy(p, 12)) for p in prompts),
                                                     tokens_of(engine, doomed), return_exceptions=True)
            assert [t for t, _, _ in together] == [t for t, _, _ in alone]
            assert isinstance(failed, EngineFailure) and "No token could be sampled" in failed.message
            await settled(engine)
        finally:
            await engine.close()

    asyncio.run(main())
