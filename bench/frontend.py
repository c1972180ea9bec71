"""Frontend overhead: our whole HTTP stack (Litestar, schemas, service, SSE rendering) fed by the zero-cost
replay engine, against a bare ASGI app streaming the same bytes on the same uvicorn.

The ratio of chunks/s says how much of the transport's capacity our stack keeps; the added latency per
chunk says what it costs each token a user waits for. Both servers run on this machine with the client,
so the client's own cost is in both figures alike.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.clients import Dialect, Target, make_client
from bench.metrics import summarize
from bench.report import Run, run_record
from bench.runner import Load, run_load, single
from bench.servers import ServerProcess, serving
from bench.spec import ChatSpec, UserText

MODEL_NAME = "bench-replay"


def tiny_model_dir() -> Path:
    """The test suite's tiny model (tokenizer and config are all the replay engine's host app reads)."""
    from runtime.model import default_cache_dir
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(default_cache_dir().parent / "bench-tiny-model")


async def measure(ours: ServerProcess, raw: ServerProcess, *, dialect: Dialect, concurrencies: list[int],
                  tokens: int, rounds: int, min_requests: int, timeout: float,
                  progress: bool) -> tuple[list[Run], dict]:
    spec = ChatSpec((UserText("Hello"),), max_tokens=tokens, ignore_eos=True)
    runs: list[Run] = []
    levels: list[dict[str, Any]] = []
    for concurrency in concurrencies:
        count = max(concurrency * rounds, min_requests)
        level: dict[str, Any] = {"concurrency": concurrency, "requests": count}
        for stream in (True, False):
            mode = "stream" if stream else "non_stream"
            figures = {}
            for server in (ours, raw):  # alternated per level, so drift in machine load hits both alike
                client = make_client(dialect, Target(server.base_url, MODEL_NAME, stream=stream))
                cpu_before = server.cpu_seconds()
                measured = await run_load(client, [single(spec)] * count, Load(concurrency), requests=count,
                                          warmup=[spec] * concurrency, timeout=timeout, progress=progress,
                                          desc=f"{server.name} {mode} c={concurrency}")
                cpu_after = server.cpu_seconds()
                figures[server.name] = summarize(measured.results, measured.duration, measured.client_cpu)
                # Includes the warm-up requests' share: counted per unit over the warm-up and the run alike.
                figures[server.name]["server_cpu_s"] = (cpu_after - cpu_before) if cpu_before is not None else None
                figures[server.name]["server_work_units"] = (count + concurrency) * (tokens if stream else 1)
                runs.append(run_record(f"{server.name} {mode}", f"c={concurrency}",
                                       {"server": server.name, "stream": stream, "concurrency": concurrency,
                                        "tokens": tokens, "requests": count}, figures[server.name]))
            level[mode] = _compare(figures["ours"], figures["raw"], stream)
        levels.append(level)
    return runs, {"levels": levels}


def _compare(ours: dict[str, Any], raw: dict[str, Any], stream: bool) -> dict[str, Any]:
    def ratio(key: str) -> float | None:
        return ours[key] / raw[key] if ours[key] and raw[key] else None

    def diff(figure: str, stat: str, scale: float) -> float | None:
        a, b = ours[figure][stat], raw[figure][stat]
        return (a - b) * scale if a is not None and b is not None else None

    def cpu_us(figures: dict[str, Any]) -> float | None:
        cpu = figures["server_cpu_s"]
        return cpu / figures["server_work_units"] * 1e6 if cpu is not None else None

    # Server CPU per chunk (per request without streaming): unlike throughput, it holds when the client or
    # other work on the machine sets the pace.
    cpu = {"ours_server_cpu_us": cpu_us(ours), "raw_server_cpu_us": cpu_us(raw)}
    if cpu["ours_server_cpu_us"] and cpu["raw_server_cpu_us"]:
        cpu["server_cpu_ratio"] = cpu["ours_server_cpu_us"] / cpu["raw_server_cpu_us"]
    clients = {"client_cpu_share": {"ours": ours["client_cpu_share"], "raw": raw["client_cpu_share"]}}
    if not stream:
        return {"ours_requests_per_s": ours["requests_per_s"], "raw_requests_per_s": raw["requests_per_s"],
                "ratio": ratio("requests_per_s"), "added_latency_ms_p50": diff("e2e_ms", "p50", 1.0), **cpu,
                **clients, "errors": {"ours": ours["errors"], "raw": raw["errors"]}}
    return {"ours_chunks_per_s": ours["chunks_per_s"], "raw_chunks_per_s": raw["chunks_per_s"],
            "ratio": ratio("chunks_per_s"), **cpu, **clients,
            # End-to-end time per chunk, ours minus the floor's: what the stack adds to each token's wait.
            "added_latency_per_chunk_us": diff("e2e_per_chunk_ms", "mean", 1000.0),
            "added_ttft_ms_p50": diff("ttft_ms", "p50", 1.0),
            "errors": {"ours": ours["errors"], "raw": raw["errors"]}}


async def run_frontend(*, model_dir: Path | None, dialect: Dialect, concurrencies: list[int], tokens: int,
                       rounds: int, min_requests: int, log_level: str, timeout: float, progress: bool,
                       log_dir: Path | None = None) -> tuple[list[Run], dict]:
    model = model_dir or tiny_model_dir()
    logs = log_dir or Path(tempfile.mkdtemp(prefix="bench-frontend-"))
    app_args = ["app", "--engine", "bench.replay_engine:ReplayEngine", "--model", str(model),
                "--served-model-name", MODEL_NAME, "--log-level", log_level]
    raw_args = ["bench.raw_asgi", "--model-name", MODEL_NAME, "--log-level", log_level]
    with serving("ours", app_args, log_dir=logs) as ours, serving("raw", raw_args, log_dir=logs) as raw:
        runs, summary = await measure(ours, raw, dialect=dialect, concurrencies=concurrencies, tokens=tokens,
                                      rounds=rounds, min_requests=min_requests, timeout=timeout, progress=progress)
    summary.update({"tokens_per_stream": tokens, "server_log_level": log_level, "server_logs": str(logs)})
    return runs, summary
