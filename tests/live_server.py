"""A real server process on a free 127.0.0.1 port, for tests (the benchmarks' launcher, bench/servers.py)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx

from bench.servers import ROOT, ServerProcess, start, wait_listening, wait_ready

__all__ = ["ROOT", "LiveServer", "health_while", "start_server", "wait_ready"]


class LiveServer(ServerProcess):
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(*args: str, log_dir: Path, env: dict[str, str] | None = None, wait: bool = True,
                 timeout: float = 180.0) -> LiveServer:
    """`python -m app --port P <args>`; returns once it listens, by default once /health answers 200. Unless the
    test names one, the server's conversation store is a file of its own (the default, in the user's cache dir,
    would be shared with every other server on the machine, of any version)."""
    if "--responses-store" not in args and "INFER_RESPONSES_STORE" not in {**os.environ, **(env or {})}:
        args = (*args, "--responses-store", str(log_dir / f"store-{uuid.uuid4().hex[:12]}.sqlite3"))
    started = start("server", ["app", *args], log_dir=log_dir, env=env)
    server = LiveServer(started.name, started.process, started.port, started.log_path)
    if wait:
        wait_ready(server, timeout)
    else:
        wait_listening(server, timeout)
    return server


def health_while(server: LiveServer, send: Callable[[], Any]) -> tuple[list[float], Any]:
    """Latencies of /health (each asserted 200), polled while `send()` runs in a thread, and what it returned."""
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(value=send()))
    latencies: list[float] = []
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        worker.start()
        while worker.is_alive():
            started = time.perf_counter()
            assert http.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
    worker.join()
    return latencies, result["value"]


def tokens_through(logprobs: list[Any], stop: str) -> int:
    """How many of an answer's tokens (its `logprobs.content` entries) it takes for its text to contain `stop`:
    vLLM's usage of that answer cut at the stop string (up to and including the token that completes it)."""
    seen = b""
    for count, entry in enumerate(logprobs, 1):
        seen += bytes(entry.bytes)
        if stop in seen.decode("utf-8", errors="ignore"):
            return count
    raise AssertionError(f"{stop!r} is not in the answer")
