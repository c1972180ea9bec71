"""Driving a workload at a fixed concurrency or a request rate (Poisson arrivals), with a progress bar.

A workload is a list of jobs. A job is one request, or a whole session whose turns run in order (each
turn's history depends on the last); concurrency and rate apply to jobs.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from tqdm import tqdm

from bench.clients import DialectClient, send
from bench.spec import ChatSpec, RequestResult

Send = Callable[[ChatSpec, int], Awaitable[RequestResult]]  # (request, its turn in the session)
Job = Callable[[Send], Awaitable[None]]


@dataclass(frozen=True)
class Load:
    concurrency: int | None = 1  # jobs in flight at once; None = no limit
    request_rate: float = math.inf  # job arrivals per second; inf = all at once

    @property
    def label(self) -> str:
        parts = []
        if self.request_rate != math.inf:
            parts.append(f"rate={self.request_rate:g}/s")
        parts.append(f"c={self.concurrency}" if self.concurrency else "c=unbounded")
        return " ".join(parts)


@dataclass
class Measured:
    results: list[RequestResult]
    duration: float
    client_cpu: float  # CPU seconds this client spent: near `duration` means the client was the bottleneck


def http_client(connections: int, timeout: float) -> httpx.AsyncClient:
    # Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive timeout closes them from the
    # server side: a request sent on a connection the server is closing would fail with a ReadError that
    # says nothing about the server under test (httpx's own default expiry is the same 5 s).
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
    )


async def run_load(client: DialectClient, jobs: list[Job], load: Load, *, requests: int, warmup: list[ChatSpec],
                   seed: int = 0, timeout: float = 600.0, progress: bool = True, desc: str = "") -> Measured:
    """Run `jobs` (which send `requests` requests in all) under `load`, after the untimed `warmup`."""
    connections = max(1, min(load.concurrency or len(jobs), len(jobs), 2048))
    async with http_client(connections, timeout) as http:
        await _warm_up(http, client, warmup, load.concurrency or len(warmup))
        results: list[RequestResult] = []
        bar = tqdm(total=requests, desc=desc or load.label, disable=not progress, file=sys.stderr, leave=False)

        async def record(spec: ChatSpec, turn: int) -> RequestResult:
            result = await send(http, client, spec)
            result.turn = turn
            results.append(result)
            bar.update(1)
            return result

        limit = asyncio.Semaphore(load.concurrency) if load.concurrency else None

        async def run_job(job: Job, delay: float) -> None:
            await asyncio.sleep(delay)
            if limit is None:
                await job(record)
                return
            async with limit:
                await job(record)

        rng = random.Random(seed)
        delays, t = [], 0.0
        for _ in jobs:
            delays.append(t)
            if load.request_rate != math.inf:
                t += rng.expovariate(load.request_rate)
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(run_job(job, delay) for job, delay in zip(jobs, delays)))
        duration, cpu = time.perf_counter() - start, time.process_time() - cpu
        bar.close()
    return Measured(results, duration, cpu)


async def send_once(client: DialectClient, spec: ChatSpec, timeout: float) -> RequestResult:
    """One request outside any run (a probe for what the server makes of a request)."""
    async with http_client(1, timeout) as http:
        return await send(http, client, spec)


async def _warm_up(http: httpx.AsyncClient, client: DialectClient, specs: list[ChatSpec], concurrency: int) -> None:
    """Untimed requests, as many at once as the load will run, so connections are open and caches primed."""
    limit = asyncio.Semaphore(max(concurrency, 1))

    async def one(spec: ChatSpec) -> None:
        async with limit:
            result = await send(http, client, spec)
        if not result.ok:
            print(f"warm-up request failed ({result.status}): {result.error}", file=sys.stderr)

    await asyncio.gather(*(one(spec) for spec in specs))


def single(spec: ChatSpec, tag: str = "") -> Job:
    """A job of one request."""

    async def job(send_one: Send) -> None:
        result = await send_one(spec, 0)
        result.tag = tag

    return job
