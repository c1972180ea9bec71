"""Latency-vs-throughput and TTFT-vs-prompt-length charts (PNG, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

Run = dict[str, Any]
NAN = float("nan")

_PANELS = (("ttft_ms", "TTFT (ms)"), ("tpot_ms", "TPOT (ms)"), ("e2e_ms", "end-to-end latency (ms)"))


def _num(value: float | None) -> float:
    return NAN if value is None else value


def _log_if_wide(ax: Any) -> None:
    """A log scale where the values span more than two decades (1 and 512 concurrent streams on one chart)."""
    values = [y for line in ax.get_lines() for y in line.get_ydata() if y == y and y > 0]
    if values and max(values) / min(values) > 100:
        ax.set_yscale("log")


def _by_group(runs: list[Run], key: str) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[str(run.get(key, ""))].append(run)
    return groups


def latency_vs_throughput(runs: list[Run], path: Path, title: str) -> Path:
    """One point per run (a load level): x output tokens/s, y the latency figures' p50 (solid) and p90
    (dashed); the runs of one group (same workload, different loads) are joined in the order they ran."""
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(5 * len(_PANELS), 4.2), squeeze=False)
    for ax, (figure, ylabel) in zip(axes[0], _PANELS):
        for group, members in _by_group(runs, "group").items():
            xs = [r["figures"]["output_tokens_per_s"] or 0 for r in members]
            p50 = [_num(r["figures"][figure]["p50"]) for r in members]
            p90 = [_num(r["figures"][figure]["p90"]) for r in members]
            if all(math.isnan(v) for v in p50):  # this figure does not apply (TPOT without streaming)
                continue
            (line,) = ax.plot(xs, p50, marker="o", label=f"{group} p50")
            ax.plot(xs, p90, marker="x", linestyle="--", color=line.get_color(), label=f"{group} p90")
            for x, y, run in zip(xs, p50, members):
                if not math.isnan(y):
                    ax.annotate(run["label"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel(ylabel)
        _log_if_wide(ax)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ttft_vs_prompt(runs: list[Run], path: Path, title: str) -> Path:
    """TTFT p50/p90 against prompt length, one line per load level."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, members in _by_group(runs, "label").items():
        members = sorted(members, key=lambda r: r["params"]["input_len"])
        xs = [r["params"]["input_len"] for r in members]
        (line,) = ax.plot(xs, [_num(r["figures"]["ttft_ms"]["p50"]) for r in members], marker="o", label=f"{label} p50")
        ax.plot(xs, [_num(r["figures"]["ttft_ms"]["p90"]) for r in members], marker="x", linestyle="--",
                color=line.get_color(), label=f"{label} p90")
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("TTFT (ms)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def by_concurrency(documents: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Output throughput and TPOT p50 against concurrency, one line per server label (several results files
    of one server, say its c=1 run and its c=4,16 run, join into one line)."""
    lines: dict[str, dict[int, Run]] = defaultdict(dict)
    for document in documents:
        server = document["target"].get("label") or document["target"].get("base_url", "?")
        for run in document["runs"]:
            concurrency = run["params"].get("concurrency")
            if concurrency is not None:
                lines[f"{server} {run['group']}"][int(concurrency)] = run
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), squeeze=False)
    panels = (("output_tokens_per_s", "output tokens/s"), ("tpot_ms", "TPOT p50 (ms)"))
    for ax, (figure, ylabel) in zip(axes[0], panels):
        for label, runs in sorted(lines.items()):
            xs = sorted(runs)
            ys = [runs[x]["figures"][figure] if figure == "output_tokens_per_s" else _num(runs[x]["figures"][figure]["p50"])
                  for x in xs]
            ax.plot(xs, ys, marker="o", label=label)
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:.1f}" if y < 100 else f"{y:.0f}", (x, y), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
