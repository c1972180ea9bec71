"""From per-request records to the figures SGLang's and vLLM's benchmark clients report (same definitions:
TTFT to the first output chunk, ITL between output chunks, TPOT = (e2e - TTFT) / (output tokens - 1))."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from bench.spec import RequestResult

Stats = dict[str, float | None]


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def stats_ms(seconds: Iterable[float]) -> Stats:
    values = sorted(v * 1000 for v in seconds)
    if not values:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "count": 0}
    return {"mean": sum(values) / len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "count": len(values)}


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def summarize(results: list[RequestResult], duration: float, client_cpu: float | None = None) -> dict[str, Any]:
    ok = [r for r in results if r.ok]
    errors = Counter(r.status for r in results if not r.ok)
    samples: dict[str, str] = {}
    for r in results:
        if not r.ok and r.status not in samples:
            samples[r.status] = (r.error or "")[:300]
    output_tokens = sum(r.output_count for r in ok)
    chunks = sum(len(r.chunk_times) for r in ok)
    prompt_tokens = sum(r.prompt_tokens or r.expected_prompt_tokens or 0 for r in ok)
    with_cache = [r for r in ok if r.cached_tokens is not None and r.prompt_tokens]
    checked_prompts = [r for r in ok if r.prompt_tokens is not None and r.expected_prompt_tokens is not None]
    checked_outputs = [r for r in ok if r.output_tokens is not None and r.expected_output_tokens is not None]
    ended = [r for r in ok if r.e2e is not None]
    timed = [r for r in ended if r.ttft is not None]  # some output became visible
    return {
        "requests": len(results),
        "completed": len(ok),
        "errors": dict(errors),
        "error_samples": samples,
        "duration_s": duration,
        # The load generator's own CPU time over the run, as a share of the wall time: near 1 (one core)
        # means the client, not the server, set the pace.
        "client_cpu_share": _ratio(client_cpu, duration) if client_cpu is not None else None,
        "requests_per_s": _ratio(len(ok), duration),
        "output_tokens_per_s": _ratio(output_tokens, duration),
        "input_tokens_per_s": _ratio(prompt_tokens, duration),
        "chunks_per_s": _ratio(chunks, duration),
        "total_input_tokens": prompt_tokens,
        "total_output_tokens": output_tokens,
        "mean_input_tokens": _ratio(prompt_tokens, len(ok)),
        "mean_output_tokens": _ratio(output_tokens, len(ok)),
        "ttft_ms": stats_ms(r.ttft for r in timed),
        "itl_ms": stats_ms(b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:])),
        # Streamed requests only: without streaming the first token arrives with the last.
        "tpot_ms": stats_ms((r.e2e - r.ttft) / (r.output_count - 1) for r in timed
                            if r.chunk_times and r.output_count > 1),
        "e2e_ms": stats_ms(r.e2e for r in ended),
        "e2e_per_chunk_ms": stats_ms(r.e2e / len(r.chunk_times) for r in timed if r.chunk_times),
        # Whole request time per output token: unlike TPOT, it does not depend on when the first chunk
        # became visible (a streamed tool call shows nothing until its name is complete).
        "e2e_per_output_token_ms": stats_ms(r.e2e / r.output_count for r in ended if r.output_count),
        # Prefix-cache reuse as the server reported it (None where it reported no cached counts).
        "cache_hit_ratio": _ratio(sum(r.cached_tokens or 0 for r in with_cache),
                                  sum(r.prompt_tokens or 0 for r in with_cache)) if with_cache else None,
        # Whether the workload's exact lengths held on this server (None where it could not be checked).
        "prompt_length_exact": _ratio(sum(r.prompt_tokens == r.expected_prompt_tokens for r in checked_prompts),
                                      len(checked_prompts)),
        "output_length_exact": _ratio(sum(r.output_tokens == r.expected_output_tokens for r in checked_outputs),
                                      len(checked_outputs)),
        "tool_call_rate": _ratio(sum(r.tool_calls > 0 for r in ok), len(ok)),
    }


def cache_hit_by_turn(results: list[RequestResult]) -> dict[str, float | None]:
    """Per position in the session: how much of each turn's prompt the server had cached."""
    cached: dict[int, int] = defaultdict(int)
    prompt: dict[int, int] = defaultdict(int)
    for r in results:
        if r.ok and r.cached_tokens is not None and r.prompt_tokens:
            cached[r.turn] += r.cached_tokens
            prompt[r.turn] += r.prompt_tokens
    return {str(turn): _ratio(cached[turn], prompt[turn]) for turn in sorted(prompt)}
