"""How long the service takes to prefill Claude Code's first request: the figure CLAUDE_CODE_INTEGRATION.md
gives for when a user needs CLAUDE_STREAM_IDLE_TIMEOUT_MS.

    python -m bench.claude_code_prefill --claude .cache/npm/node_modules/.bin/claude --context-length 32768

1. The request: the real CLI's first request, caught by running `claude -p "say hi"` against an endpoint here
   that keeps the body and answers 400 (or a body saved earlier: --body; --save-body keeps the one caught).
2. A server: `python -m app --model M --context-length N` started here (the default model by default), or one
   already running (--base-url).
3. Each run sends the body with max_tokens 1, not streamed, and times it: the prefill plus one decode step.
   Each run's system prompt starts with a different marker, so no run reuses another's prefix from the cache
   (the run checks that cache_read_input_tokens is 0).

Prints one JSON line per run: wall seconds, the server's CPU seconds (when started here), prompt tokens, and
the load average. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.servers import ServerProcess, serving

CAUGHT = json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                "message": "caught by bench.claude_code_prefill"}}).encode()


def catch_first_request(claude: Path, timeout: float = 120.0) -> dict[str, Any]:
    """The body of the first POST /v1/messages the CLI sends for `claude -p "say hi"` in a fresh home."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 (the CLI may probe the root URL first)
            self.send_response(200)
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            bodies.append(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(CAUGHT)))
            self.end_headers()
            self.wfile.write(CAUGHT)

        def log_message(self, *args: Any) -> None:
            pass

    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as work:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
            env.update({"HOME": home, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{endpoint.server_port}",
                        "ANTHROPIC_AUTH_TOKEN": "unused", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                        "CLAUDE_CODE_DISABLE_1M_CONTEXT": "1", "DISABLE_AUTOUPDATER": "1"})
            subprocess.run([str(claude.resolve()), "-p", "say hi", "--max-turns", "1"], cwd=work, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    finally:
        endpoint.shutdown()
    if not bodies:
        raise RuntimeError(f"{claude} sent no request")
    return json.loads(bodies[0])


def marked(body: dict[str, Any], marker: str) -> dict[str, Any]:
    """The body with `marker` leading its system prompt (after the billing header, which the service drops)."""
    system = body["system"]
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    system = [dict(block) for block in system]
    at = 1 if system and system[0]["text"].startswith("x-anthropic-billing-header:") and len(system) > 1 else 0
    system[at]["text"] = f"[{marker}] " + system[at]["text"]
    return {**body, "system": system, "max_tokens": 1, "stream": False}


def measure(base_url: str, body: dict[str, Any], marker: str, timeout: float,
            server: ServerProcess | None) -> dict[str, Any]:
    cpu_before = server.cpu_seconds() if server else None
    started = time.perf_counter()
    response = httpx.post(base_url + "/v1/messages?beta=true", json=marked(body, marker), timeout=timeout,
                          headers={"anthropic-version": "2023-06-01", "authorization": "Bearer unused"})
    seconds = time.perf_counter() - started
    cpu_after = server.cpu_seconds() if server else None
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text}")
    usage = response.json()["usage"]
    if usage.get("cache_read_input_tokens"):
        raise RuntimeError(f"run {marker} reused {usage['cache_read_input_tokens']} cached tokens")
    # The server's CPU time says what the run costs on a machine that others do not share.
    cpu = round(cpu_after - cpu_before, 1) if cpu_before is not None and cpu_after is not None else None
    return {"run": marker, "seconds": round(seconds, 1), "server_cpu_seconds": cpu,
            "prompt_tokens": usage["input_tokens"], "tokens_per_second": round(usage["input_tokens"] / seconds)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.claude_code_prefill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--claude", type=Path, help="the Claude Code CLI binary whose first request to time")
    source.add_argument("--body", type=Path, help="a saved request body (JSON) instead")
    parser.add_argument("--save-body", type=Path, help="where to keep the body caught from the CLI")
    parser.add_argument("--base-url", help="a running server to measure (default: start one)")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the model of the server started here")
    parser.add_argument("--context-length", type=int, default=32768)
    parser.add_argument("--server-arg", action="append", default=[], help="more `python -m app` flags")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one run may take")
    args = parser.parse_args(argv)

    body = catch_first_request(args.claude) if args.claude else json.loads(args.body.read_text())
    if args.save_body:
        args.save_body.write_text(json.dumps(body))
    print(json.dumps({"body_bytes": len(json.dumps(body)), "tools": len(body.get("tools", [])),
                      "cpus": os.cpu_count(), "load_average": os.getloadavg()[0]}), flush=True)

    def runs(base_url: str, server: ServerProcess | None) -> None:
        for n in range(1, args.runs + 1):
            result = measure(base_url, body, f"run {n} {time.time_ns()}", args.timeout, server)
            print(json.dumps(result | {"load_average": os.getloadavg()[0]}), flush=True)

    if args.base_url:
        runs(args.base_url, None)
        return
    server_args = ["app", "--model", args.model, "--context-length", str(args.context_length), *args.server_arg]
    with tempfile.TemporaryDirectory() as logs, serving("server", server_args, log_dir=Path(logs), timeout=600) as s:
        runs(s.base_url, s)


if __name__ == "__main__":
    main(sys.argv[1:])
