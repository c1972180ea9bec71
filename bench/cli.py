"""`python -m bench <workload> [options]`: run a workload against a server and write JSON + PNG results.

Workloads: random (exact input/output lengths; sweep concurrency, request rate, prompt length), agent
(Claude-Code-like sessions; prefix-cache hit ratio), tools (grammar overhead: tool_choice required vs none
vs no tools), frontend (our HTTP stack on a zero-cost engine vs a bare ASGI app; starts both itself);
compare prints one markdown table from several results files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
from pathlib import Path

import httpx

from bench import report
from bench.clients import Target
from bench.experiments import WORKLOADS, Outcome


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _rates(text: str) -> list[float]:
    return [math.inf if x.strip() in ("inf", "") else float(x) for x in text.split(",")]


def _common(parser: argparse.ArgumentParser, *, needs_server: bool = True) -> None:
    if needs_server:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="the server to load")
        parser.add_argument("--model", help="model name to request (default: the first of GET /v1/models)")
        parser.add_argument("--api-key", default=os.environ.get("BENCH_API_KEY"),
                            help="sent as Bearer (OpenAI) or x-api-key (Anthropic); env BENCH_API_KEY")
        parser.add_argument("--tokenizer", required=True,
                            help="local directory of the served model's tokenizer, to build exact-length prompts")
        parser.add_argument("--request-rate", type=_rates, default=None,
                            help="job arrivals per second (Poisson), comma-separated to sweep; inf = all at once")
        parser.add_argument("--no-stream", action="store_true", help="non-streaming requests (TTFT = latency)")
        parser.add_argument("--extra-body", type=json.loads, default={},
                            help="JSON merged into every request body (engine-specific fields)")
        parser.add_argument("--temperature", type=float, default=0.0)
        parser.add_argument("--label", help="names the server in `compare` tables (e.g. ours, sglang, vllm)")
    parser.add_argument("--dialect", choices=("openai", "anthropic"), default="openai",
                        help="openai: POST /v1/chat/completions; anthropic: POST /v1/messages")
    parser.add_argument("--concurrency", type=_ints, default=None, help="jobs in flight, comma-separated to sweep")
    parser.add_argument("--warmup", type=int, default=1, help="untimed requests before each measured run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    parser.add_argument("--output", type=Path, help="results JSON (charts are written next to it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)

    p = sub.add_parser("random", help="random prompts of exact input/output token lengths")
    _common(p)
    p.add_argument("--input-len", type=_ints, default=[128], help="prompt tokens (chat template included); "
                   "comma-separated to sweep")
    p.add_argument("--output-len", type=_ints, default=[32], help="output tokens, comma-separated to sweep")
    p.add_argument("--num-requests", type=int, default=20, help="measured requests per run")

    p = sub.add_parser("agent", help="Claude-Code-like sessions: shared system prompt and tools, growing history")
    _common(p)
    p.add_argument("--sessions", type=int, default=4, help="sessions per run")
    p.add_argument("--turns", type=int, default=4, help="requests per session")
    p.add_argument("--system-tokens", type=int, default=1024, help="size of the shared system prompt")
    p.add_argument("--user-tokens", type=int, default=64, help="size of each session's first user message")
    p.add_argument("--tool-result-tokens", type=int, default=128, help="size of each tool result")
    p.add_argument("--output-len", type=int, default=16, help="max output tokens per turn")
    p.add_argument("--tool-choice", choices=("omit", "auto", "none", "required"), default="omit",
                   help="omit sends no tool_choice, as Claude Code does")

    p = sub.add_parser("tools", help="grammar overhead: the same prompts with tool_choice required, none, no tools")
    _common(p)
    p.add_argument("--input-len", type=_ints, default=[128], help="user prompt tokens (before the tools)")
    p.add_argument("--output-len", type=_ints, default=[64], help="max output tokens (room for a whole call)")
    p.add_argument("--num-requests", type=int, default=10, help="measured requests per variant")

    p = sub.add_parser("frontend", help="our stack on the zero-cost replay engine vs a bare ASGI app (starts both)")
    _common(p, needs_server=False)
    p.add_argument("--model", type=Path, help="model directory for the app to load a tokenizer from "
                   "(default: the test suite's tiny model, built once)")
    p.add_argument("--tokens", type=int, default=64, help="output chunks per stream")
    p.add_argument("--rounds", type=int, default=2, help="requests per run = concurrency x rounds ...")
    p.add_argument("--min-requests", type=int, default=64, help="... but at least this many")
    p.add_argument("--server-log-level", default="warning",
                   help="both servers' log level (info adds uvicorn's access log line per request)")

    p = sub.add_parser("compare", help="one markdown table from several results files")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--chart", type=Path, help="also draw throughput and TPOT p50 against concurrency (PNG)")
    p.add_argument("--title", default="throughput and TPOT against concurrency")
    return parser


def discover_model(base_url: str, api_key: str | None) -> str:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(base_url.rstrip("/") + "/v1/models", headers=headers, timeout=30)
    response.raise_for_status()
    return response.json()["data"][0]["id"]


async def run_frontend_cli(args: argparse.Namespace) -> Outcome:
    from bench.frontend import run_frontend

    return await run_frontend(model_dir=args.model, dialect=args.dialect,
                              concurrencies=args.concurrency or [1, 64, 512],
                              tokens=args.tokens, rounds=args.rounds, min_requests=args.min_requests,
                              log_level=args.server_log_level, timeout=args.timeout, progress=not args.no_progress)


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    if args.benchmark == "compare":
        documents = [json.loads(path.read_text()) for path in args.files]
        print(report.compare(documents))
        if args.chart is not None:
            from bench.plots import by_concurrency

            print(f"wrote {by_concurrency(documents, args.chart, args.title)}")
        return args.files[0]
    started = report.conditions()
    if args.benchmark == "frontend":
        target = {"base_url": "(started by the benchmark)", "model": "replay engine vs raw ASGI",
                  "dialect": args.dialect, "stream": "both"}
        runs, summary = asyncio.run(run_frontend_cli(args))
    else:
        model = args.model or discover_model(args.base_url, args.api_key)
        client_target = Target(args.base_url, model, args.api_key, stream=not args.no_stream,
                               extra_body=args.extra_body)
        target = {"base_url": args.base_url, "model": model, "dialect": args.dialect, "stream": not args.no_stream,
                  "tokenizer": args.tokenizer, "label": args.label}
        runs, summary = asyncio.run(WORKLOADS[args.benchmark](args, client_target))
    output = args.output or report.default_output(args.benchmark)
    written = report.write(output, args.benchmark, target, runs, summary, started)
    print(report.table(runs))
    if summary:
        print(json.dumps(summary, indent=2, default=str))
    print("wrote " + ", ".join(str(p) for p in written))
    return output


if __name__ == "__main__":
    main()
