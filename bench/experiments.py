"""The workloads that run against a server: each builds its requests, runs them at every load level asked
for, and summarises each run (the CLI's options arrive as the argparse namespace)."""

from __future__ import annotations

import argparse
import math
import random
from typing import Any

from bench.agent import agent_sessions, session_job
from bench.clients import Target, make_client
from bench.metrics import cache_hit_by_turn, summarize
from bench.prompts import PromptBuilder
from bench.report import Run, run_record
from bench.runner import Job, Load, Measured, run_load, send_once, single
from bench.spec import ChatSpec
from bench.workloads import TOOL_VARIANTS, random_requests, with_tools

Outcome = tuple[list[Run], dict[str, Any]]


def _loads(args: argparse.Namespace) -> list[Load]:
    rates = args.request_rate or [math.inf]
    # With a request rate and no concurrency given, arrivals alone set the load (as SGLang's client does).
    concurrencies: list[int | None] = list(args.concurrency or ([None] if args.request_rate else [1]))
    return [Load(c, r) for r in rates for c in concurrencies]


async def _measure(args: argparse.Namespace, target: Target, jobs: list[Job], warmup: list[ChatSpec], load: Load,
                   requests: int, desc: str) -> Measured:
    return await run_load(make_client(args.dialect, target), jobs, load, requests=requests, warmup=warmup,
                          seed=args.seed, timeout=args.timeout, progress=not args.no_progress, desc=desc)


def _params(load: Load, **more: Any) -> dict[str, Any]:
    rate = None if load.request_rate == math.inf else load.request_rate
    return {"concurrency": load.concurrency, "request_rate": rate, **more}


async def run_random(args: argparse.Namespace, target: Target) -> Outcome:
    builder = PromptBuilder(args.tokenizer)
    runs = []
    for input_len in args.input_len:
        for output_len in args.output_len:
            for level, load in enumerate(_loads(args)):
                # Fresh prompts per run: a prefix cache must not carry one run's prompts into the next.
                specs = random_requests(builder, input_len=input_len, output_len=output_len,
                                        count=args.num_requests + args.warmup, seed=args.seed * 1000 + level,
                                        temperature=args.temperature)
                warm, timed = specs[: args.warmup], specs[args.warmup :]
                group = f"in={input_len} out={output_len}"
                m = await _measure(args, target, [single(s) for s in timed], warm, load, len(timed),
                                   f"{group} {load.label}")
                runs.append(run_record(group, load.label, _params(load, input_len=input_len, output_len=output_len),
                                       summarize(m.results, m.duration, m.client_cpu)))
    return runs, {}


async def run_agent(args: argparse.Namespace, target: Target) -> Outcome:
    builder = PromptBuilder(args.tokenizer)
    choice = None if args.tool_choice == "omit" else args.tool_choice
    runs = []
    for level, load in enumerate(_loads(args)):
        sessions = agent_sessions(builder, sessions=args.sessions + (1 if args.warmup else 0), turns=args.turns,
                                  system_tokens=args.system_tokens, user_tokens=args.user_tokens,
                                  tool_result_tokens=args.tool_result_tokens, output_len=args.output_len,
                                  seed=args.seed * 1000 + level, tool_choice=choice, temperature=args.temperature)
        # Warm-up: the first turn of a spare session, which primes the shared system prompt and tools
        # as any earlier user of the server would have.
        warm = [sessions.pop()[0]] if args.warmup else []
        m = await _measure(args, target, [session_job(s) for s in sessions], warm, load,
                           args.sessions * args.turns, f"agent {load.label}")
        figures = summarize(m.results, m.duration, m.client_cpu)
        runs.append(run_record("agent", load.label, _params(load, sessions=args.sessions, turns=args.turns,
                                                            system_tokens=args.system_tokens,
                                                            tool_result_tokens=args.tool_result_tokens,
                                                            output_len=args.output_len),
                               figures, cache_hit_by_turn=cache_hit_by_turn(m.results)))
    summary = {"cache_hit_ratio": {r["label"]: r["figures"]["cache_hit_ratio"] for r in runs},
               "cache_hit_by_turn": {r["label"]: r["cache_hit_by_turn"] for r in runs}}
    return runs, summary


async def run_tools(args: argparse.Namespace, target: Target) -> Outcome:
    builder = PromptBuilder(args.tokenizer)
    client = make_client(args.dialect, target)
    runs = []
    overhead: dict[str, Any] = {}
    count = args.num_requests + args.warmup
    for input_len in args.input_len:
        for output_len in args.output_len:
            for level, load in enumerate(_loads(args)):
                # Fresh text per variant, same lengths: identical prompts would come from the prefix cache the
                # second time, and the comparison would measure the cache, not the grammar.
                def prompts(length: int, variant: int, system: str | None = None) -> list[ChatSpec]:
                    return random_requests(builder, input_len=length, output_len=output_len, count=count,
                                           seed=args.seed * 1000 + level * 10 + variant, temperature=args.temperature,
                                           system=system)

                specs = {"required": with_tools(prompts(input_len, 0), "required"),
                         "none": with_tools(prompts(input_len, 1), "none")}
                # No tools and no grammar, but prompts as long as the tool variants' (the server's rendering of
                # the tools decides that, so one request asks) and as cacheable: a shared system prompt as long
                # as the tools stands in for them. Prefill and attention then cost the same; what differs is
                # the grammar.
                probe = await send_once(client, specs["none"][0], args.timeout)
                rendered = probe.prompt_tokens or input_len
                stand_in = builder.text(rendered - input_len, random.Random(f"tools-stand-in-{args.seed}"))
                specs["no_tools"] = prompts(rendered, 2, system=stand_in)
                warm = [s[i] for s in specs.values() for i in range(args.warmup)]
                # Variants interleaved request by request, so a change in the machine's load hits all alike.
                jobs = [single(specs[variant][args.warmup + i], variant)
                        for i in range(args.num_requests) for variant in TOOL_VARIANTS]
                m = await _measure(args, target, jobs, warm, load, len(jobs), f"tools {load.label}")
                figures = {}
                for variant in TOOL_VARIANTS:
                    results = [r for r in m.results if r.tag == variant]
                    # Each variant's share of the mixed run: its requests' latencies over the concurrency.
                    share = sum(r.e2e or 0.0 for r in results) / (load.concurrency or len(results))
                    figures[variant] = summarize(results, share)
                    runs.append(run_record(f"tools={variant} in={input_len}", load.label,
                                           _params(load, variant=variant, input_len=input_len, output_len=output_len,
                                                   interleaved=True), figures[variant]))
                overhead[f"in={input_len} out={output_len} {load.label}"] = _grammar_overhead(figures)
    return runs, {"grammar_overhead": overhead}


def _grammar_overhead(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Decode time per output token (means), each grammar variant against no tools at the same prompt length.
    For the text variants that is their TPOT. A streamed call shows nothing until its name is complete, so
    its TTFT includes the tokens that open the call: for `required`, prefill is taken as the `none`
    variant's TTFT (the same prompts, the same cache state) and the rest of the request is spread over its
    other tokens."""
    forced, free, plain = figures["required"], figures["none"], figures["no_tools"]
    decode: dict[str, float | None] = {"required": None, "none": free["tpot_ms"]["mean"],
                                       "no_tools": plain["tpot_ms"]["mean"]}
    e2e, prefill, tokens = forced["e2e_ms"]["mean"], free["ttft_ms"]["mean"], forced["mean_output_tokens"]
    if e2e is not None and prefill is not None and tokens and tokens > 1:
        decode["required"] = (e2e - prefill) / (tokens - 1)
    base = decode["no_tools"]
    return {
        "decode_ms_per_token": decode,
        "ratio_to_no_tools": {v: d / base if d and base else None for v, d in decode.items() if v != "no_tools"},
        "added_ms_per_token": {v: d - base if d is not None and base is not None else None
                               for v, d in decode.items() if v != "no_tools"},
        "mean_prompt_tokens": {v: f["mean_input_tokens"] for v, f in figures.items()},
        "mean_output_tokens": {v: f["mean_output_tokens"] for v, f in figures.items()},
        "ttft_p50_ms": {v: f["ttft_ms"]["p50"] for v, f in figures.items()},
        "cache_hit_ratio": {v: f["cache_hit_ratio"] for v, f in figures.items()},
        "tool_call_rate": {v: f["tool_call_rate"] for v, f in figures.items()},
    }


WORKLOADS = {"random": run_random, "agent": run_agent, "tools": run_tools}
