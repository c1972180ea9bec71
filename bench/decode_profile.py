"""Where a batched decode step of the CPU engine spends its time: the engine alone (no HTTP), N greedy
requests at once, each step timed, the decode-only steps optionally profiled.

    python -m bench.decode_profile --concurrency 16 --profile torch     # op table of the decode steps
    python -m bench.decode_profile --concurrency 1,16                   # step times at each concurrency

Step times are wall clock and CPU time of the worker thread (on a shared machine compare the CPU time and
the profile's proportions, not the wall clock). The prompts are the bench's `random` workload's shape: 128
tokens, 32 generated, ignore_eos.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import time
import uuid

import torch

from runtime.engines import EngineConfig, create_engine
from runtime.model import DEFAULT_MODEL, load_model_info, resolve_model_path
from runtime.types import EngineRequest, SamplingParams


def _requests(tokenizer, n: int, input_len: int, output_len: int) -> list[EngineRequest]:
    repeats = 40 + (input_len + n) // 16  # (~20 tokens each: enough for n prompts of input_len, offset by one)
    text = "The quick brown fox jumps over the lazy dog while the compiler schedules the next batch. " * repeats
    base = tokenizer.encode(text)
    return [EngineRequest(uuid.uuid4().hex, tuple(base[i : i + input_len]),
                          SamplingParams(temperature=0.0, max_new_tokens=output_len, ignore_eos=True))
            for i in range(n)]


async def _drain(engine, request) -> None:
    async for _ in engine.generate(request):
        pass


class StepTimer:
    """Wraps the scheduler's step: (rows, decode-only?, wall s, thread CPU s) per step, and a profiler
    enabled around the decode-only steps at full concurrency."""

    def __init__(self, scheduler, profile: str | None, full: int, prefill: bool = False) -> None:
        self.records: list[tuple[int, bool, float, float]] = []
        self._scheduler, self._step = scheduler, scheduler.step
        self._profile, self._full, self._prefill = profile, full, prefill
        self.cprofile = cProfile.Profile() if profile == "cprofile" else None
        self.torch_profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile == "torch" else None
        self._torch_started = False
        self.parts: dict[str, list[float]] = {"forward": [], "logits": []}  # wall s per decode step at full concurrency
        self._profiled = False
        scheduler.step = self.step
        model = scheduler.model
        for name in self.parts:
            setattr(model, name, self._timed(name, getattr(model, name)))

    def _timed(self, name, method):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = method(*args, **kwargs)
            if self._profiled:
                self.parts[name].append(time.perf_counter() - start)
            return out
        return timed

    def step(self) -> None:
        running = self._scheduler.running
        decode_only = all(len(s.tokens) - s.computed == 1 for s in running)
        profiled = self._profiled = (not decode_only) if self._prefill else decode_only and len(running) == self._full
        if profiled and self.cprofile is not None:
            self.cprofile.enable()
        if self.torch_profile is not None and profiled != self._torch_started:  # decode steps are contiguous
            (self.torch_profile.start if profiled else self.torch_profile.stop)()
            self._torch_started = profiled
        wall, cpu = time.perf_counter(), time.thread_time()
        self._step()
        self.records.append((len(running), decode_only, time.perf_counter() - wall, time.thread_time() - cpu))
        if profiled and self.cprofile is not None:
            self.cprofile.disable()
        if self._torch_started and (self._prefill or len(self._scheduler.running) < self._full):  # (stopped in the thread it started in)
            self.torch_profile.stop()
            self._torch_started = False


async def run(concurrency: int, args, path: str) -> StepTimer:
    info = load_model_info(path)
    engine = create_engine("cpu", EngineConfig(path, "m", threads=args.threads), info)
    await engine.start()
    try:
        await _drain(engine, _requests(info.tokenizer, concurrency + 1, args.input_len, 4)[-1])  # warm-up (another prompt)
        timer = StepTimer(engine._scheduler, args.profile, concurrency, args.steps == "prefill")
        start = time.perf_counter()
        await asyncio.gather(*(_drain(engine, r) for r in _requests(info.tokenizer, concurrency, args.input_len,
                                                                      args.output_len)))
        elapsed = time.perf_counter() - start
    finally:
        await engine.close()
    decode = [(w, c) for rows, only, w, c in timer.records if only and rows == concurrency]
    mixed = [(w, c) for rows, only, w, c in timer.records if not only]
    print(f"c={concurrency}: {concurrency * args.output_len / elapsed:.1f} tok/s over {elapsed:.2f} s; "
          f"{len(decode)} decode steps: wall p50 {1e3 * statistics.median(w for w, _ in decode):.1f} ms, "
          f"CPU p50 {1e3 * statistics.median(c for _, c in decode):.1f} ms; "
          f"{len(mixed)} steps with prefill: wall {1e3 * sum(w for w, _ in mixed):.0f} ms in all")
    step = statistics.median(w for w, _ in decode)
    parts = {name: statistics.median(times) for name, times in timer.parts.items()}
    print("  decode step parts (wall p50, ms): " + ", ".join(f"{n} {1e3 * t:.1f}" for n, t in parts.items())
          + f", the rest (inputs, sampling, stops, events) {1e3 * (step - sum(parts.values())):.1f}")
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="16")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile", choices=["cprofile", "torch"], default=None)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--steps", choices=["decode", "prefill"], default="decode", help="which steps to profile")
    args = parser.parse_args()
    path = resolve_model_path(os.environ.get("DECODE_PROFILE_MODEL", DEFAULT_MODEL))
    for c in (int(x) for x in args.concurrency.split(",")):
        timer = asyncio.run(run(c, args, path))
        if timer.cprofile is not None:
            pstats.Stats(timer.cprofile).sort_stats("tottime").print_stats(args.top)
        if timer.torch_profile is not None:
            print(timer.torch_profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))

if __name__ == "__main__":
    main()
