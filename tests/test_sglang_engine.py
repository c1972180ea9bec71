"""Contract tests for the SGLang adapter, against a fake `sglang` that replays 0.5.23's shapes (tests/fake_sglang).

The last test runs the real engine; it is marked `gpu` and skipped without CUDA and sglang.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from runtime.engines import EngineConfig
from runtime.engines.sglang import SglangEngine
from runtime.errors import EngineFailure, EngineUnavailable, InvalidRequest, Overloaded, ServiceError
from runtime.model import ModelInfo
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
    Usage,
)

ROOT = Path(__file__).resolve().parent.parent
FAKE_PATH = str(Path(__file__).resolve().parent / "fake_sglang")
CONFIG = EngineConfig(model_path="/models/tiny", served_model_name="tiny")


class CharTokenizer:
    """Stands in for a transformers tokenizer: the adapter encodes its warm-up prompt and decodes stop tokens."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids)


MODEL = ModelInfo("/models/tiny", CharTokenizer(), SimpleNamespace(vocab_size=0x110000), 4096, (2,))


@pytest.fixture
def fake(fake_sglang: ModuleType) -> ModuleType:
    return fake_sglang


def request(sampling: SamplingParams | None = None, constraint: Constraint | None = None) -> EngineRequest:
    return EngineRequest(uuid.uuid4().hex, (5, 6, 7), sampling or SamplingParams(), constraint)


async def started(config: EngineConfig = CONFIG) -> SglangEngine:
    engine = SglangEngine(config, MODEL)
    await engine.start()
    return engine


async def collect(engine: SglangEngine, req: EngineRequest) -> list[EngineEvent]:
    return [event async for event in engine.generate(req)]


def run_script(fake: ModuleType, script: Any, req: EngineRequest | None = None) -> list[EngineEvent]:
    """Start an engine, run one scripted request to its end, close."""

    async def scenario() -> list[EngineEvent]:
        engine = await started()
        fake.control.scripts.append(script)
        try:
            return await collect(engine, req or request())
        finally:
            await engine.close()

    return asyncio.run(scenario())


async def first_delta(engine: SglangEngine, req: EngineRequest) -> tuple[asyncio.Task[list[EngineEvent]], TextDelta]:
    """Start consuming `req` in a task; return once its first delta has arrived."""
    seen: asyncio.Queue[EngineEvent] = asyncio.Queue()

    async def consume() -> list[EngineEvent]:
        events = []
        async for event in engine.generate(req):
            events.append(event)
            seen.put_nowait(event)
        return events

    task = asyncio.create_task(consume())
    first = await asyncio.wait_for(seen.get(), 5)
    assert isinstance(first, TextDelta)
    return task, first


# -- start and close ----------------------------------------------------------------------------------------


def test_start_passes_only_set_options_by_their_0_5_23_names(fake: ModuleType) -> None:
    asyncio.run(started())
    assert fake.control.engines[-1].kwargs == {
        "model_path": "/models/tiny",
        "served_model_name": "tiny",
        "dtype": "auto",
        "random_seed": 0,
        "tp_size": 1,
        "dp_size": 1,
        "disable_radix_cache": False,
        "enable_cache_report": True,
        "enable_custom_logit_processor": True,  # the thinking budget (tests/test_reasoning_sglang.py)
    }


def test_start_passes_every_engine_setting(fake: ModuleType) -> None:
    config = EngineConfig(
        model_path="/models/big", served_model_name="big", context_length=65536, dtype="bfloat16", seed=7,
        max_running_requests=64, threads=8, tp_size=2, dp_size=2, mem_fraction_static=0.85,
        chunked_prefill_size=8192, quantization="fp8", disable_radix_cache=True,
    )
    asyncio.run(started(config))
    assert fake.control.engines[-1].kwargs == {
        "model_path": "/models/big",
        "served_model_name": "big",
        "dtype": "bfloat16",
        "random_seed": 7,
        "tp_size": 2,
        "dp_size": 2,
        "disable_radix_cache": True,
        "enable_cache_report": True,
        "enable_custom_logit_processor": True,
        "context_length": 65536,
        "mem_fraction_static": 0.85,
        "max_running_requests": 64,
        "chunked_prefill_size": 8192,
        "quantization": "fp8",
    }


def test_engine_args_pass_through_as_json_or_text(fake: ModuleType) -> None:
    extra = (("schedule_policy", "lpm"), ("enable_mixed_chunk", "true"), ("mem_fraction_static", "0.7"))
    asyncio.run(started(EngineConfig(model_path="/m", served_model_name="m", mem_fraction_static=0.9, extra=extra)))
    kwargs = fake.control.engines[-1].kwargs
    assert kwargs["schedule_policy"] == "lpm" and kwargs["enable_mixed_chunk"] is True
    assert kwargs["mem_fraction_static"] == 0.7  # the pass-through wins


def test_fake_rejects_a_name_that_0_5_23_server_args_lacks(fake: ModuleType) -> None:
    with pytest.raises(TypeError, match="Unexpected keyword argument 'seed'"):
        fake.Engine(model_path="/m", seed=1)


def test_start_builds_the_engine_off_the_loop_thread_then_warms_up(fake: ModuleType) -> None:
    asyncio.run(started())
    sglang_engine = fake.control.engines[-1]
    assert sglang_engine.thread is not threading.main_thread()
    (warm_up,) = sglang_engine.calls
    assert warm_up["input_ids"] == [ord(c) for c in "Hello"]
    assert warm_up["sampling_params"]["max_new_tokens"] == 4
    assert warm_up["sampling_params"]["temperature"] == 0.0
    assert len(warm_up["rid"]) == 32 and warm_up["closed"]


def test_start_undoes_sglangs_process_wide_side_effects(fake: ModuleType) -> None:
    def uvicorn_handle_exit(signum: int, frame: Any) -> None:
        pass

    async def scenario() -> None:
        root = logging.getLogger()
        handler = logging.StreamHandler()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        handlers = list(root.handlers)
        policy = asyncio.get_event_loop_policy()
        signal.signal(signal.SIGTERM, uvicorn_handle_exit)
        try:
            await started()
            assert signal.getsignal(signal.SIGTERM) is uvicorn_handle_exit  # SGLang's loop handler removed
            assert asyncio.get_event_loop_policy() is policy
            assert root.handlers == handlers and root.level == logging.INFO
        finally:
            root.removeHandler(handler)

    asyncio.run(scenario())


def test_engine_constructor_failure_makes_start_raise(fake: ModuleType) -> None:
    fake.control.constructor_error = RuntimeError("Rank 0 scheduler died during initialization (exit code: -9).")

    async def scenario() -> None:
        engine = SglangEngine(CONFIG, MODEL)
        with pytest.raises(EngineUnavailable, match="Rank 0 scheduler died during initialization"):
            await engine.start()
        with pytest.raises(EngineUnavailable):
            await collect(engine, request())

    asyncio.run(scenario())


def test_failed_warm_up_shuts_the_engine_down(fake: ModuleType) -> None:
    fake.control.scripts.append(fake.Script(finish=fake.abort("CUDA error: an illegal memory access", 500)))

    async def scenario() -> None:
        with pytest.raises(EngineUnavailable, match="warm-up"):
            await started()

    asyncio.run(scenario())
    assert fake.control.engines[-1].shutdown_calls == 1


def test_close_aborts_open_streams_then_shuts_down(fake: ModuleType) -> None:
    async def scenario() -> list[EngineEvent]:
        engine = await started()
        fake.control.scripts.append(fake.Script(texts=["Hel"], hold=True, completion_tokens=1))
        task, _ = await first_delta(engine, request())
        await engine.close()
        await engine.close()
        sglang_engine = fake.control.engines[-1]
        assert sglang_engine.tokenizer_manager.abort_calls == [{"rid": "", "abort_all": True}]
        assert sglang_engine.shutdown_calls == 1
        await asyncio.sleep(0)
        assert all(t.cancelled() for t in sglang_engine.tokenizer_manager.asyncio_tasks)  # handle_loop stopped
        with pytest.raises(EngineUnavailable):
            await collect(engine, request())
        return await asyncio.wait_for(task, 5)

    events = asyncio.run(scenario())
    assert events == [TextDelta("Hel", 1), Finished(FinishReason.ABORT, Usage(3, 1, 0))]


# -- streaming ---------------------------------------------------------------------------------------------


def test_cumulative_multibyte_text_becomes_deltas_that_join_exactly(fake: ModuleType) -> None:
    texts = ["你", "你好", "你好\ufffd", "你好\ufffd\ufffd", "你好😀", "你好😀", "你好😀 ok", "你好😀 ok!"]
    events = run_script(fake, fake.Script(texts=texts, finish=fake.stop_token(2)))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["你", "好", "😀", " ok", "!"]
    assert "".join(deltas) == texts[-1]
    # Each delta counts the tokens since the one before: the emoji's three (two held as U+FFFD), " ok"'s two
    # (a chunk that added no text), so a stop string in any delta ends the output after a known token.
    assert [e.tokens for e in events if isinstance(e, TextDelta)] == [1, 1, 3, 2, 1]
    assert events[-1] == Finished(FinishReason.STOP, Usage(3, len(texts), 0), None)


def test_a_chunk_of_several_tokens_counts_them_all(fake: ModuleType) -> None:
    """A lagging loop gets several steps' tokens in one chunk (`_wait_one_response` keeps the newest output)."""
    script = fake.Script(texts=["a", "abcd", "abcde"], tokens_per_chunk=[1, 3, 1], finish=fake.length(5))
    events = run_script(fake, script)
    assert events == [TextDelta("a", 1), TextDelta("bcd", 3), TextDelta("e", 1),
                      Finished(FinishReason.LENGTH, Usage(3, 5, 0))]


@pytest.mark.parametrize(("output_ids", "expected"), [
    ([ord(c) for c in "abcde"], [TextDelta(c, 1) for c in "abcde"]),
    # Ids whose decoding is not SGLang's text (the fake's defaults): the chunk's text stays whole.
    (None, [TextDelta("a", 1), TextDelta("bcd", 3), TextDelta("e", 1)]),
])
def test_where_stop_strings_are_matched_a_chunk_is_split_per_token(fake: ModuleType, output_ids, expected) -> None:
    """So that a stop string in the chunk's text ends the output's usage at the very token (runtime/output.py)."""
    script = fake.Script(texts=["a", "abcd", "abcde"], tokens_per_chunk=[1, 3, 1], output_ids=output_ids,
                         finish=fake.length(5))
    events = run_script(fake, script, replace(request(), text_per_token=True))
    assert events == [*expected, Finished(FinishReason.LENGTH, Usage(3, 5, 0))]


def test_a_chunk_split_per_token_sends_each_token_s_ids_and_logprobs_just_before_its_text(
        fake: ModuleType, tiny_model_dir: Path) -> None:
    """So that a stop string matched in the chunk's first token leaves out the later tokens' logprobs and ids,
    and a stopped output's logprobs end where its usage does (runtime/output.py drops what follows a stop)."""
    from runtime.model import load_model_info
    from runtime.output import OutputPipeline, OutputSpec
    from runtime.types import ChatFinished

    model = load_model_info(str(tiny_model_dir))
    ids = model.tokenizer.encode(" one two three four five", add_special_tokens=False)[:5]
    texts = [model.tokenizer.decode(ids[:end]) for end in (1, 4, 5)]
    script = fake.Script(texts=texts, tokens_per_chunk=[1, 3, 1], output_ids=ids, finish=fake.length(5))
    req = replace(request(SamplingParams(logprobs=0, return_token_ids=True)), text_per_token=True)

    async def scenario() -> list[EngineEvent]:
        engine = SglangEngine(CONFIG, model)
        await engine.start()
        fake.control.scripts.append(script)
        try:
            return await collect(engine, req)
        finally:
            await engine.close()

    events = asyncio.run(scenario())
    assert [type(e).__name__ for e in events] == ["TokenIds", "Logprobs", "TextDelta"] * 5 + ["Finished"]
    assert [e.ids for e in events if isinstance(e, TokenIds)] == [(i,) for i in ids]

    pipeline = OutputPipeline(OutputSpec(text_stops=(" two",)))
    out = [o for e in events for o in pipeline.push(e)]
    finished = out[-1]
    assert isinstance(finished, ChatFinished) and finished.matched_stop == " two"
    assert finished.usage.completion_tokens == 2
    assert sum(len(e.tokens) for e in out if isinstance(e, Logprobs)) == 2
    assert [i for e in out if isinstance(e, TokenIds) for i in e.ids] == ids[:2]


def test_a_character_split_across_chunks_counts_its_tokens_in_the_delta_that_shows_it(
        fake: ModuleType, tiny_model_dir: Path) -> None:
    from runtime.model import load_model_info

    model = load_model_info(str(tiny_model_dir))  # byte-level: each of these characters is three tokens
    ids = model.tokenizer.encode("a北京b")
    ends = [2, len(ids) - 1, len(ids)]  # "a" and half of 北; the rest of 北, 京; "b"
    texts = [model.tokenizer.decode(ids[:end]) for end in ends]
    script = fake.Script(texts=texts, tokens_per_chunk=[2, len(ids) - 3, 1], output_ids=ids, finish=fake.length(8))

    async def scenario() -> list[EngineEvent]:
        engine = SglangEngine(CONFIG, model)
        await engine.start()
        fake.control.scripts.append(script)
        try:
            return await collect(engine, replace(request(), text_per_token=True))
        finally:
            await engine.close()

    events = asyncio.run(scenario())
    deltas = [(e.text, e.tokens) for e in events if isinstance(e, TextDelta)]
    assert deltas == [("a", 1), ("北", 3), ("京", 3), ("b", 1)]


def test_a_trailing_replacement_char_waits_for_the_next_chunk_and_the_last_is_flushed(fake: ModuleType) -> None:
    texts = ["ab\ufffd", "ab\ufffdc", "ab\ufffdc\ufffd"]  # SGLang's text only grows: a real U+FFFD stays
    events = run_script(fake, fake.Script(texts=texts, finish=fake.length(3)))
    assert events == [TextDelta("ab", 1), TextDelta("\ufffdc", 1), TextDelta("\ufffd", 1),
                      Finished(FinishReason.LENGTH, Usage(3, 3, 0))]


def test_cached_tokens_are_reported(fake: ModuleType) -> None:
    script = fake.Script(texts=["x"], finish=fake.length(1), prompt_tokens=12, cached_tokens=8, completion_tokens=1)
    events = run_script(fake, script)
    assert events[-1] == Finished(FinishReason.LENGTH, Usage(prompt_tokens=12, completion_tokens=1, cached_tokens=8))


@pytest.mark.parametrize(
    ("finish", "stop_token_ids", "expected"),
    [
        (("stop_token", 2), (), Finished(FinishReason.STOP, Usage(3, 1, 0), None)),  # EOS
        (("stop_token", 9731), (9731,), Finished(FinishReason.STOP, Usage(3, 1, 0), "☃")),  # a named stop token
        (("length", 1), (), Finished(FinishReason.LENGTH, Usage(3, 1, 0))),
        (("abort", "Abort in waiting queue"), (), Finished(FinishReason.ABORT, Usage(3, 1, 0))),  # no status
    ],
)
def test_finish_reasons(fake: ModuleType, finish: tuple[str, Any], stop_token_ids: tuple[int, ...],
                        expected: Finished) -> None:
    maker, arg = finish
    req = request(SamplingParams(stop_token_ids=stop_token_ids))
    events = run_script(fake, fake.Script(texts=["Hi"], finish=getattr(fake, maker)(arg)), req)
    assert events == [TextDelta("Hi", 1), expected]


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, InvalidRequest), (429, Overloaded), (503, EngineUnavailable), (500, EngineFailure)],
)
def test_an_abort_with_a_status_raises(fake: ModuleType, status: int, error: type[ServiceError]) -> None:
    message = "Failed to compile json_schema grammar: unsupported keyword 'if'"
    script = fake.Script(texts=[""], finish=fake.abort(message, status, "BadRequestError"))
    with pytest.raises(error) as raised:
        run_script(fake, script, request(constraint=Constraint(ConstraintKind.JSON_SCHEMA, '{"if": {}}')))
    assert type(raised.value) is error
    assert raised.value.message == message


def test_a_value_error_inside_the_stream_is_an_invalid_request(fake: ModuleType) -> None:
    message = "The input (5000 tokens) is longer than the model's context length (4096 tokens)."
    with pytest.raises(InvalidRequest) as raised:
        run_script(fake, fake.Script(raise_in_stream=ValueError(message)))
    assert raised.value.message == message


def test_a_value_error_from_async_generate_is_an_invalid_request(fake: ModuleType) -> None:
    message = "Failed to compile regex grammar: unbalanced parenthesis"
    with pytest.raises(InvalidRequest) as raised:
        run_script(fake, fake.Script(raise_on_call=ValueError(message)))
    assert raised.value.message == message


def test_a_stream_that_ends_without_a_finish_reason_is_an_engine_failure(fake: ModuleType) -> None:
    with pytest.raises(EngineFailure, match="without a finish reason"):
        run_script(fake, fake.Script(texts=["x"], finish=None))


def test_an_unexpected_engine_error_is_an_engine_failure(fake: ModuleType) -> None:
    with pytest.raises(EngineFailure) as raised:
        run_script(fake, fake.Script(raise_in_stream=RuntimeError("zmq.error.ContextTerminated")))
    assert raised.value.message == "The engine failed while generating."


# -- what we send -----------------------------------------------------------------------------------------


def sent(fake: ModuleType, req: EngineRequest) -> dict[str, Any]:
    run_script(fake, fake.Script(texts=["ok"]), req)
    return fake.control.engines[-1].calls[-1]


def test_sampling_params_are_mapped_exactly(fake: ModuleType) -> None:
    sampling = SamplingParams(
        temperature=0.7, top_p=0.9, top_k=40, min_p=0.05, frequency_penalty=0.5, presence_penalty=-0.5,
        repetition_penalty=1.1, seed=1234, max_new_tokens=256, min_new_tokens=3, stop=("###", "\n\n"),  # not sent
        stop_token_ids=(7, 9),
        ignore_eos=True, skip_special_tokens=False, logit_bias=((7, 5.0), (12, -100.0)),
    )
    req = request(sampling)
    call = sent(fake, req)
    assert call["input_ids"] == [5, 6, 7] and call["rid"] == req.rid and call["stream"] is True
    assert call["return_logprob"] is False and call["top_logprobs_num"] is None  # not asked for: not sent
    assert call["sampling_params"] == {
        "max_new_tokens": 256, "min_new_tokens": 3, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
        "frequency_penalty": 0.5, "presence_penalty": -0.5, "repetition_penalty": 1.1,
        "stop_token_ids": [7, 9], "ignore_eos": True, "skip_special_tokens": False, "sampling_seed": 1234,
        "logit_bias": {"7": 5.0, "12": -100.0},
    }


def test_allowed_token_ids_which_sglang_lacks_are_refused_not_ignored(fake: ModuleType) -> None:
    """0.5.23's SamplingParams has no allowed_token_ids: a 400 naming the field, never a generation that ignores it."""
    with pytest.raises(InvalidRequest) as refused:
        sent(fake, request(SamplingParams(allowed_token_ids=(3, 4))))
    assert refused.value.param == "allowed_token_ids"


@pytest.mark.parametrize("scored, prompt_top, expected_top", [(False, None, 0), (True, 2, 2), (True, None, 5)])
def test_logprob_token_ids_become_token_ids_logprob_and_name_the_alternatives(
        fake: ModuleType, tiny_model_dir: Path, scored: bool, prompt_top: int | None, expected_top: int) -> None:
    """vLLM's logprob_token_ids on SGLang: its token_ids_logprob, no top-k for the output (the prompt's keep theirs);
    each entry's alternatives are the sampled token, then the named ids in their order, as on the CPU engine."""
    from runtime.model import load_model_info

    model = load_model_info(str(tiny_model_dir))

    async def scenario() -> tuple[list[EngineEvent], dict[str, Any]]:
        engine = SglangEngine(CONFIG, model)
        await engine.start()
        fake.control.scripts.append(fake.Script(texts=["a", "ab"], finish=fake.length(2)))
        try:
            sampling = SamplingParams(logprobs=5, max_new_tokens=2, logprob_token_ids=(30, 1001, 40))
            req = EngineRequest(uuid.uuid4().hex, (50, 60, 70), sampling, prompt_logprobs=scored,
                                prompt_top_logprobs=prompt_top)
            return await collect(engine, req), fake.control.engines[-1].calls[-1]
        finally:
            await engine.close()

    events, call = asyncio.run(scenario())
    assert call["return_logprob"] is True and call["token_ids_logprob"] == [30, 1001, 40]
    assert call["top_logprobs_num"] == expected_top  # the prompt's (as many as the output's when not said)
    vocab = list(__import__("xgrammar").TokenizerInfo.from_huggingface(model.tokenizer,
                                                                       vocab_size=model.vocab_size).decoded_vocab)
    entries = [t for e in events if isinstance(e, Logprobs) for t in e.tokens]
    assert [[(a.data, a.logprob) for a in t.top] for t in entries] == [
        [(vocab[1000], -0.25), (vocab[30], -3.0), (vocab[1001], -4.0), (vocab[40], -5.0)],
        [(vocab[1001], -0.5), (vocab[30], -3.0), (vocab[40], -5.0)],  # the sampled one is named: listed once
    ]
    if scored:
        assert [len(t.top) for t in events[0].tokens] == [0, expected_top, expected_top]


@pytest.mark.parametrize("top", [0, 2])
def test_logprobs_are_asked_for_and_each_token_reported_once_before_its_text(
        fake: ModuleType, tiny_model_dir: Path, top: int) -> None:
    from runtime.model import load_model_info

    model = load_model_info(str(tiny_model_dir))  # a real tokenizer: tokens are named by their bytes
    texts = ["a", "ab", "ab\ufffd", "abc"]

    async def scenario() -> tuple[list[EngineEvent], dict[str, Any]]:
        engine = SglangEngine(CONFIG, model)
        await engine.start()
        fake.control.scripts.append(fake.Script(texts=texts, finish=fake.stop_token(2)))
        try:
            events = await collect(engine, request(SamplingParams(logprobs=top)))
            return events, fake.control.engines[-1].calls[-1]
        finally:
            await engine.close()

    events, call = asyncio.run(scenario())
    assert call["return_logprob"] is True and call["top_logprobs_num"] == top
    assert call["logprob_start_len"] is None  # SGLang's default -1: no prompt logprobs
    entries = [t for e in events if isinstance(e, Logprobs) for t in e.tokens]
    vocab = list(__import__("xgrammar").TokenizerInfo.from_huggingface(model.tokenizer,
                                                                       vocab_size=model.vocab_size).decoded_vocab)
    assert [(t.data, t.logprob) for t in entries] == [(vocab[1000 + i], -0.25 * (i + 1)) for i in range(4)]
    assert all(t.token == t.data.decode("utf-8", errors="replace") for t in entries)
    assert [[(a.data, a.logprob) for a in t.top] for t in entries] == [[(vocab[10 + k], -1.0 - k)
                                                                       for k in range(top)]] * 4
    # Each token's entry comes no later than the text it made (the held-back U+FFFD's included).
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Logprobs", "TextDelta", "Logprobs", "TextDelta", "Logprobs", "Logprobs", "TextDelta",
                     "Finished"]


def test_prompt_logprobs_come_first_with_the_first_tokens_left_unscored(fake: ModuleType, tiny_model_dir: Path) -> None:
    from runtime.model import load_model_info

    model = load_model_info(str(tiny_model_dir))

    async def scenario() -> tuple[list[EngineEvent], dict[str, Any]]:
        engine = SglangEngine(CONFIG, model)
        await engine.start()
        fake.control.scripts.append(fake.Script(texts=["a"], finish=fake.length(1)))
        try:
            req = EngineRequest(uuid.uuid4().hex, (50, 60, 70), SamplingParams(logprobs=1, max_new_tokens=1),
                                prompt_logprobs=True)
            return await collect(engine, req), fake.control.engines[-1].calls[-1]
        finally:
            await engine.close()

    events, call = asyncio.run(scenario())
    assert call["return_logprob"] is True and call["logprob_start_len"] == 0 and call["top_logprobs_num"] == 1
    assert isinstance(events[0], PromptLogprobs)
    vocab = list(__import__("xgrammar").TokenizerInfo.from_huggingface(model.tokenizer,
                                                                       vocab_size=model.vocab_size).decoded_vocab)
    assert [(t.data, t.logprob, len(t.top)) for t in events[0].tokens] == [
        (vocab[50], 0.0, 0), (vocab[60], -0.5, 1), (vocab[70], -0.5, 1)]
    assert [type(e).__name__ for e in events[1:]] == ["Logprobs", "TextDelta", "Finished"]


def test_default_sampling_params_mean_top_k_off_and_no_token_cap(fake: ModuleType) -> None:
    assert sent(fake, request())["sampling_params"] == {
        "max_new_tokens": None, "min_new_tokens": 0, "temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0,
        "frequency_penalty": 0.0, "presence_penalty": 0.0, "repetition_penalty": 1.0,
        "stop_token_ids": [], "ignore_eos": False, "skip_special_tokens": True, "sampling_seed": None,
    }


@pytest.mark.parametrize("sampling", [SamplingParams(temperature=1e-9), SamplingParams(top_p=0.0)])
def test_our_other_greedy_cases_become_sglangs_greedy(fake: ModuleType, sampling: SamplingParams) -> None:
    params = sent(fake, request(sampling))["sampling_params"]
    assert params["temperature"] == 0.0 and params["top_p"] == 1.0


@pytest.mark.parametrize(
    ("kind", "key", "text"),
    [
        (ConstraintKind.JSON_SCHEMA, "json_schema", '{"type": "object"}'),
        (ConstraintKind.STRUCTURAL_TAG, "structural_tag", '{"type": "structural_tag", "format": {}}'),
        (ConstraintKind.EBNF, "ebnf", 'root ::= "yes" | "no"'),
        (ConstraintKind.REGEX, "regex", "[0-9]+"),
    ],
)
def test_each_constraint_goes_to_its_own_key(fake: ModuleType, kind: ConstraintKind, key: str, text: str) -> None:
    params = sent(fake, request(constraint=Constraint(kind, text)))["sampling_params"]
    grammar_keys = {"json_schema", "structural_tag", "ebnf", "regex"}
    assert {k: params[k] for k in grammar_keys & params.keys()} == {key: text}


# -- cancellation ---------------------------------------------------------------------------------------------


def test_closing_the_stream_early_aborts_the_request(fake: ModuleType) -> None:
    req = request()

    async def scenario() -> TextDelta:
        engine = await started()
        fake.control.scripts.append(fake.Script(texts=["Hel", "Hello"], hold=True))
        stream = engine.generate(req)
        first = await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        sglang_engine = fake.control.engines[-1]
        assert sglang_engine.tokenizer_manager.abort_calls == [{"rid": req.rid, "abort_all": False}]
        assert sglang_engine.calls[-1].get("closed")  # SGLang's generator closed at once, not left to the GC
        await engine.close()
        return first

    assert asyncio.run(scenario()) == TextDelta("Hel", 1)


def test_cancelling_the_consumer_aborts_the_request(fake: ModuleType) -> None:
    req = request()

    async def scenario() -> None:
        engine = await started()
        fake.control.scripts.append(fake.Script(texts=["Hel"], hold=True))
        task, _ = await first_delta(engine, req)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sglang_engine = fake.control.engines[-1]
        assert sglang_engine.tokenizer_manager.abort_calls == [{"rid": req.rid, "abort_all": False}]
        assert sglang_engine.calls[-1].get("closed")
        await engine.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "reason",
    [("Aborted", None, None), ("Aborted by AbortReq.", 400, "BadRequestError")],  # running / grammar queue
)
def test_abort_ends_the_stream_with_finished_abort(
    fake: ModuleType, reason: tuple[str, int | None, str | None]
) -> None:
    req = request()

    async def scenario() -> list[EngineEvent]:
        engine = await started()
        await engine.abort("not-a-running-rid")
        fake.control.scripts.append(fake.Script(texts=["Hel"], hold=True, abort_reason=fake.abort(*reason)))
        task, _ = await first_delta(engine, req)
        await engine.abort(req.rid)
        events = await asyncio.wait_for(task, 5)
        await engine.close()
        return events

    assert asyncio.run(scenario()) == [TextDelta("Hel", 1), Finished(FinishReason.ABORT, Usage(3, 1, 0))]
    assert fake.control.engines[-1].tokenizer_manager.abort_calls == [{"rid": req.rid, "abort_all": False}]


# -- without sglang -----------------------------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_module_imports_without_sglang() -> None:
    result = run_python("""
        import importlib.util, sys
        import runtime.engines.sglang
        from runtime.engines import create_engine
        assert importlib.util.find_spec("sglang") is None, "sglang is installed here; this check needs it absent"
        assert not [m for m in sys.modules if m == "sglang" or m.startswith("sglang.")]
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_start_without_sglang_says_how_to_install_it() -> None:
    result = run_python("""
        import asyncio
        from types import SimpleNamespace
        from runtime.engines import EngineConfig
        from runtime.engines.sglang import SglangEngine
        from runtime.errors import EngineUnavailable
        engine = SglangEngine(EngineConfig(model_path="/m", served_model_name="m"), SimpleNamespace())
        try:
            asyncio.run(engine.start())
        except EngineUnavailable as exc:
            print(exc.message)
    """)
    assert result.returncode == 0, result.stderr
    assert "pip install -e '.[gpu]'" in result.stdout


def test_a_child_failing_during_launch_does_not_kill_the_server() -> None:
    # Without the adapter's launch-phase handler, SIGQUIT's default action would end this process with a core dump.
    result = run_python(f"""
        import asyncio, sys
        from types import SimpleNamespace
        sys.path.insert(0, {FAKE_PATH!r})
        import sglang
        from runtime.engines import EngineConfig
        from runtime.engines.sglang import SglangEngine
        from runtime.errors import EngineUnavailable
        sglang.control.sigquit_during_launch = True
        sglang.control.constructor_error = RuntimeError("Rank 0 scheduler died during initialization")
        engine = SglangEngine(EngineConfig(model_path="/m", served_model_name="m"), SimpleNamespace())
        try:
            asyncio.run(engine.start())
        except EngineUnavailable:
            print("survived")
    """)
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.strip() == "survived"
    assert "failed during launch (SIGQUIT)" in result.stderr


# -- the real engine -----------------------------------------------------------------------------------------------


def _cuda_and_sglang() -> bool:
    if importlib.util.find_spec("sglang") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_and_sglang(), reason="needs CUDA and sglang (pip install -e '.[gpu]')")
def test_real_sglang_streams_caches_constrains_and_aborts() -> None:
    from runtime.model import DEFAULT_MODEL, load_model_info, resolve_model_path

    path = resolve_model_path(os.environ.get("INFER_TEST_MODEL", DEFAULT_MODEL))
    info = load_model_info(path)
    config = EngineConfig(model_path=path, served_model_name="test", context_length=4096, mem_fraction_static=0.5)
    prompt = tuple(info.tokenizer.encode("The capital of France is"))

    def req(sampling: SamplingParams, constraint: Constraint | None = None) -> EngineRequest:
        return EngineRequest(uuid.uuid4().hex, prompt, sampling, constraint)

    async def scenario() -> None:
        engine = SglangEngine(config, info)
        await engine.start()
        try:
            events = await collect(engine, req(SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True)))
            assert events[-1] == Finished(FinishReason.LENGTH, events[-1].usage)  # type: ignore[union-attr]
            assert events[-1].usage.prompt_tokens == len(prompt)  # type: ignore[union-attr]
            assert events[-1].usage.completion_tokens == 8  # type: ignore[union-attr]
            text = "".join(e.text for e in events if isinstance(e, TextDelta))
            assert text and "\ufffd" not in text

            again = await collect(engine, req(SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True)))
            assert "".join(e.text for e in again if isinstance(e, TextDelta)) == text  # greedy is repeatable
            assert again[-1].usage.cached_tokens > 0  # type: ignore[union-attr]  # the radix cache hit

            schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
                      "additionalProperties": False}
            constrained = await collect(engine, req(SamplingParams(temperature=0.0, max_new_tokens=64),
                                                    Constraint(ConstraintKind.JSON_SCHEMA, json.dumps(schema))))
            value = json.loads("".join(e.text for e in constrained if isinstance(e, TextDelta)))
            assert isinstance(value["n"], int)

            broken = Constraint(ConstraintKind.EBNF, "root ::= (")
            with pytest.raises(InvalidRequest):  # "Failed to compile ebnf grammar: ...", a 400 abort
                await collect(engine, req(SamplingParams(max_new_tokens=8), broken))

            long = req(SamplingParams(max_new_tokens=2000, ignore_eos=True))
            task, _ = await first_delta(engine, long)
            await engine.abort(long.rid)
            aborted = await asyncio.wait_for(task, 30)
            assert isinstance(aborted[-1], Finished) and aborted[-1].reason is FinishReason.ABORT
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_token_ids_are_reported_once_each_before_their_text(fake: ModuleType, tiny_model_dir: Path) -> None:
    """return_token_ids: SGLang's cumulative output_ids become TokenIds events of the new ids only."""
    from runtime.model import load_model_info
    from runtime.types import TokenIds

    model = load_model_info(str(tiny_model_dir))

    async def scenario() -> list[EngineEvent]:
        engine = SglangEngine(CONFIG, model)
        await engine.start()
        fake.control.scripts.append(fake.Script(texts=["a", "ab", "abc"], finish=fake.stop_token(2)))
        try:
            return await collect(engine, request(SamplingParams(return_token_ids=True)))
        finally:
            await engine.close()

    events = asyncio.run(scenario())
    assert [i for e in events if isinstance(e, TokenIds) for i in e.ids] == [1000, 1001, 1002]
    assert [type(e).__name__ for e in events] == ["TokenIds", "TextDelta"] * 3 + ["Finished"]
