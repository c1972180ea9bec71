"""The results document (JSON), its charts, and a console table."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import plots

Run = dict[str, Any]


def conditions() -> dict[str, Any]:
    """What the figures depend on besides the server: the client machine and how busy it was."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "load_average_1_5_15": load, "platform": platform.platform(),
            "python": platform.python_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def run_record(group: str, label: str, params: dict[str, Any], figures: dict[str, Any], **extra: Any) -> Run:
    return {"group": group, "label": label, "params": params, "figures": figures, **extra}


def default_output(benchmark: str) -> Path:
    """bench/out/ (git ignores it), wherever the command runs from."""
    return Path(__file__).resolve().parent / "out" / f"{benchmark}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def write(path: Path, benchmark: str, target: dict[str, Any], runs: list[Run], summary: dict[str, Any],
          started: dict[str, Any]) -> list[Path]:
    """Write the JSON and its PNG charts next to it; returns every file written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": benchmark, "command": " ".join(sys.argv), "target": target, "conditions": started,
                "finished_load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
                "summary": summary, "runs": runs}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    written = [path]
    title = f"{benchmark}: {target.get('model', '')} @ {target.get('base_url', '')}"
    written.append(plots.latency_vs_throughput(runs, path.with_suffix(".png"), title))
    if len({r["params"].get("input_len") for r in runs} - {None}) > 1:
        written.append(plots.ttft_vs_prompt(runs, path.with_name(path.stem + "-ttft-vs-prompt.png"), title))
    return written


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(runs: list[Run]) -> str:
    header = ("group", "load", "ok", "errors", "req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99",
              "ITL p50", "E2E p50", "E2E p99", "cache hit")
    rows = [header]
    for r in runs:
        f = r["figures"]
        rows.append((
            r["group"], r["label"], f"{f['completed']}/{f['requests']}",
            ",".join(f"{k}:{v}" for k, v in f["errors"].items()) or "-",
            _fmt(f["requests_per_s"], 2), _fmt(f["output_tokens_per_s"]),
            _fmt(f["ttft_ms"]["p50"]), _fmt(f["ttft_ms"]["p99"]), _fmt(f["tpot_ms"]["p50"], 2),
            _fmt(f["tpot_ms"]["p99"], 2), _fmt(f["itl_ms"]["p50"], 2), _fmt(f["e2e_ms"]["p50"]),
            _fmt(f["e2e_ms"]["p99"]), _fmt(f["cache_hit_ratio"], 3),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    def line(row: tuple[str, ...]) -> str:  # names left-aligned, figures right-aligned
        return "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    return "\n".join(line(row) for row in rows) + "\n(latencies in ms)"


def compare(documents: list[dict[str, Any]]) -> str:
    """One markdown table from several results files (say, the same workload against three servers)."""
    lines = ["| server | workload | load | ok | req/s | out tok/s | TTFT p50 | TTFT p99 | TPOT p50 | TPOT p99 "
             "| ITL p50 | E2E p50 | E2E p99 | cache hit |", "|" + "---|" * 14]
    for doc in documents:
        server = doc["target"].get("label") or doc["target"].get("base_url", "")
        for r in doc["runs"]:
            f = r["figures"]
            lines.append("| " + " | ".join([
                server, f"{doc['benchmark']} {r['group']}", r["label"], f"{f['completed']}/{f['requests']}",
                _fmt(f["requests_per_s"], 2), _fmt(f["output_tokens_per_s"]), _fmt(f["ttft_ms"]["p50"]),
                _fmt(f["ttft_ms"]["p99"]), _fmt(f["tpot_ms"]["p50"], 2), _fmt(f["tpot_ms"]["p99"], 2),
                _fmt(f["itl_ms"]["p50"], 2), _fmt(f["e2e_ms"]["p50"]), _fmt(f["e2e_ms"]["p99"]),
                _fmt(f["cache_hit_ratio"], 3)]) + " |")
    return "\n".join(lines) + "\n\nLatencies in ms."
