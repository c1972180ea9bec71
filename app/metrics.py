"""Prometheus metrics at GET /metrics: HTTP responses by route and status, and per generation the latency
figures bench/ measures from outside (time to first token, time per output token, end to end), token
counts including prefix-cache hits, and how many generations run now. Like vLLM's and SGLang's /metrics it
needs no API key; keep it off the public side of the proxy.

Each app has its own registry (tests build several apps in one process).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from runtime.types import ChatEvent, ChatFinished, TextDelta, ToolCallStart

# vLLM's buckets, so dashboards built for its metrics read ours alike.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
                80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)

# Routes by their template; anything else (unknown paths) is "other", so a scanner cannot grow the label set.
_ROUTES = ("/health", "/metrics", "/v1/chat/completions", "/v1/completions", "/v1/messages/count_tokens",
           "/v1/messages", "/v1/models", "/tokenize", "/detokenize")


def route_label(path: str) -> str:
    if path in _ROUTES:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    return "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_responses = Counter("inference_http_responses", "HTTP responses by route and status.",
                                      ["route", "status"], registry=r)
        self.running = Gauge("inference_requests_running", "Generations running now.", registry=r)
        self.waiting = Gauge("inference_requests_waiting", "Requests queued for a generation slot now "
                             "(--max-running-requests).", registry=r)
        self.generations = Counter(
            "inference_generations", "Generations ended, by how: a finish reason, or cancelled (the client went "
            "away) or error.", ["finish_reason"], registry=r)
        self.prompt_tokens = Counter("inference_prompt_tokens", "Prompt tokens of finished generations.", registry=r)
        self.cached_tokens = Counter("inference_prompt_cached_tokens",
                                     "Prompt tokens served from the prefix cache.", registry=r)
        self.generation_tokens = Counter("inference_generation_tokens", "Output tokens of finished generations.",
                                         registry=r)
        self.ttft = Histogram("inference_time_to_first_token_seconds", "From the start of a generation to its "
                              "first text or call.", buckets=TTFT_BUCKETS, registry=r)
        self.tpot = Histogram("inference_time_per_output_token_seconds", "After the first token, seconds per "
                              "output token.", buckets=TPOT_BUCKETS, registry=r)
        self.e2e = Histogram("inference_e2e_request_latency_seconds", "From the start of a generation to its "
                             "end.", buckets=E2E_BUCKETS, registry=r)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def generation(self) -> GenerationMetrics:
        """A generation starts: the run owner reports its events and its end to what this returns."""
        return GenerationMetrics(self)

    def finished(self, event: ChatFinished, started: float, first: float | None) -> None:
        now = time.perf_counter()
        usage = event.usage
        self.prompt_tokens.inc(usage.prompt_tokens)
        self.cached_tokens.inc(usage.cached_tokens)
        self.generation_tokens.inc(usage.completion_tokens)
        self.e2e.observe(now - started)
        if first is not None and usage.completion_tokens > 1:
            self.tpot.observe((now - first) / (usage.completion_tokens - 1))

    def count_response(self, message: dict[str, Any], scope: dict[str, Any]) -> None:
        """At every HTTP response's start, 404s and mapped errors included (app/server.py's before-send hook)."""
        self.http_responses.labels(route_label(scope["path"]), str(message["status"])).inc()


class GenerationMetrics:
    """One generation's figures, fed synchronously by its run owner (app/streaming.py)."""

    __slots__ = ("_metrics", "_started", "_first", "outcome")

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._started = time.perf_counter()
        self._first: float | None = None
        self.outcome = "error"  # until a finish says otherwise; the owner sets "cancelled" when it left
        metrics.running.inc()

    def see(self, event: ChatEvent) -> None:
        if self._first is None and isinstance(event, (TextDelta, ToolCallStart)):
            self._first = time.perf_counter()
            self._metrics.ttft.observe(self._first - self._started)
        elif isinstance(event, ChatFinished):
            self.outcome = event.reason.value
            self._metrics.finished(event, self._started, self._first)

    def end(self) -> None:
        self._metrics.running.dec()
        self._metrics.generations.labels(self.outcome).inc()
