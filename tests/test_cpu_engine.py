"""The CPU engine directly: concurrency, cancellation, grammars, prefix cache, multi-byte streaming."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from runtime.engines import EngineConfig, create_engine
from runtime.errors import InvalidRequest
from runtime.model import load_model_info
from runtime.types import Constraint, ConstraintKind, EngineRequest, FinishReason, SamplingParams, TextDelta


def run(coro):
    return asyncio.run(coro)


async def engine_for(model_dir):
    info = load_model_info(str(model_dir))
    engine = create_engine("cpu", EngineConfig(str(model_dir), "m"), info)
    await engine.start()
    return engine, info


def request(ids, **sampling) -> EngineRequest:
    constraint = sampling.pop("constraint", None)
    return EngineRequest(uuid.uuid4().hex, tuple(ids), SamplingParams(**sampling), constraint)


async def collect(engine, req):
    text, finished = [], None
    async for event in engine.generate(req):
        if isinstance(event, TextDelta):
            text.append(event.text)
        else:
            finished = event
    return "".join(text), finished


def test_concurrent_requests_match_sequential_ones(tiny_model_dir):
    async def main():
        engine, info = await engine_for(tiny_model_dir)
        try:
            prompts = [info.tokenizer.encode(f"prompt number {i}") for i in range(6)]
            reqs = lambda: [request(p, temperature=0.0, max_new_tokens=12, ignore_eos=True) for p in prompts]
            together = await asyncio.gather(*(collect(engine, r) for r in reqs()))
            alone = [await collect(engine, r) for r in reqs()]
            assert [t for t, _ in together] == [t for t, _ in alone]
            assert all(f.reason is FinishReason.LENGTH and f.usage.completion_tokens == 12 for _, f in together)
        finally:
            await engine.close()

    run(main())


def test_cancelled_request_stops_consuming_compute(tiny_model_dir):
    async def main():
        engine, info = await engine_for(tiny_model_dir)
        try:
            stream = engine.generate(request(info.tokenizer.encode("go"), max_new_tokens=1_000_000, ignore_eos=True))
            for _ in range(3):
                await anext(stream)
            assert engine.running == 1
            await stream.aclose()  # what a client disconnect does
            deadline = time.monotonic() + 2
            while engine.running and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert engine.running == 0
        finally:
            await engine.close()

    run(main())


def test_event_loop_is_not_blocked(tiny_model_dir):
    async def main():
        engine, info = await engine_for(tiny_model_dir)
        try:
            ticks: list[float] = []

            async def ticker():
                while True:
                    await asyncio.sleep(0.005)
                    ticks.append(time.monotonic())

            task = asyncio.create_task(ticker())
            started = time.monotonic()
            await collect(engine, request(info.tokenizer.encode("x " * 2000), max_new_tokens=200, ignore_eos=True))
            finished = time.monotonic()
            task.cancel()
            # The loop kept turning throughout prefill and decode. The worker thread holds the GIL for most of each
            # step, so a 5 ms tick comes every 5-10 ms on a quiet machine; the bounds leave room for a loaded one.
            elapsed = finished - started
            gaps = [b - a for a, b in zip([started, *ticks], [*ticks, finished])]
            assert len(ticks) > elapsed / 0.05 and max(gaps) < max(0.25, elapsed / 3), (elapsed, len(ticks), max(gaps))
        finally:
            await engine.close()

    run(main())


def test_json_schema_constraint_and_bad_grammar(tiny_model_dir):
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99},
                                               "s": {"type": "string", "maxLength": 5}},
              "required": ["n", "s"], "additionalProperties": False}
    async def main():
        engine, info = await engine_for(tiny_model_dir)
        try:
            for seed in range(5):
                text, finished = await collect(engine, request(info.tokenizer.encode("json"), seed=seed, max_new_tokens=100,
                                               constraint=Constraint(ConstraintKind.JSON_SCHEMA, json.dumps(schema))))
                assert finished.reason is FinishReason.STOP
                value = json.loads(text, strict=False)
                assert set(value) == {"n", "s"} and 0 <= value["n"] <= 99 and len(value["s"]) <= 5
            with pytest.raises(InvalidRequest):
                await collect(engine, request([1, 2], constraint=Constraint(ConstraintKind.EBNF, "root ::= (")))
        finally:
            await engine.close()

    run(main())


def test_prefix_cache_reports_cached_tokens_and_keeps_outputs(tiny_model_dir):
    async def main():
        engine, info = await engine_for(tiny_model_dir)
        try:
            prefix = info.tokenizer.encode("a long shared system prompt " * 20)
            first = await collect(engine, request(prefix + [5], temperature=0.0, max_new_tokens=8, ignore_eos=True))
            second = await collect(engine, request(prefix + [6], temperature=0.0, max_new_tokens=8, ignore_eos=True))
            assert first[1].usage.cached_tokens == 0
            assert second[1].usage.cached_tokens == len(prefix)
            again = await collect(engine, request(prefix + [5], temperature=0.0, max_new_tokens=8, ignore_eos=True))
            assert again[0] == first[0] and again[1].usage.cached_tokens >= len(prefix)
        finally:
            await engine.close()

    run(main())


def test_text_deltas_count_the_tokens_that_made_them(tiny_model_dir):
    """Each TextDelta counts the tokens since the one before (a token ending inside a character counts in the
    delta that completes it): the output pipeline ends a stopped output's usage by these counts."""
    async def main():
        engine, info = await engine_for(tiny_model_dir)
        try:
            # Chinese characters are split across byte tokens in the tiny model's vocabulary: bias towards them (the
            # UTF-8 guard keeps each character whole).
            pieces = [t for t in info.tokenizer.encode("北京今天天气怎么样") if "\ufffd" in info.tokenizer.decode([t])]
            assert pieces
            req = request(info.tokenizer.encode("hi"), temperature=1.0, seed=3, max_new_tokens=48, ignore_eos=True,
                          logit_bias=tuple((t, 100.0) for t in pieces))
            deltas, finished = [], None
            async for event in engine.generate(req):
                if isinstance(event, TextDelta):
                    deltas.append(event)
                else:
                    finished = event
            assert finished.reason is FinishReason.LENGTH and all(d.tokens >= 1 for d in deltas)
            assert sum(d.tokens for d in deltas) == finished.usage.completion_tokens == 48
            assert any(d.tokens > 1 for d in deltas)  # some character took more than one token
        finally:
            await engine.close()

    run(main())
