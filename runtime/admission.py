"""Admission: how many generations run at once, and a bounded first-come queue for the others.

It sits above the engine (app/state.py asks it before every request), so both engines get the same rules:

1. A request asks for as many slots as it runs generations (OpenAI's `n`), all at once: two n=2 requests
   never hold one slot each while waiting for a second.
2. With a slot free and nobody queued, it runs now.
3. Otherwise it queues, in arrival order, if the queue has room, for at most `max_wait` seconds.
4. A full queue, or a wait that runs out, is Overloaded (429) with a Retry-After estimate: answered at once
   or after a bounded wait, never after the client's own timeout.
5. A request needing more slots than there are can never run: InvalidRequest on `n` (400), not a 429.

Each generation gives its slot back when it ends. Without a cap (`running_cap` None) every request runs at
once and nothing queues. Why a queue rather than unbounded concurrency on the CPU engine: it steps its
sequences one after another, so each added stream slows every other (500 concurrent streams measured a p50
latency of 19 minutes, past every SDK's default 600 s timeout).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from runtime.errors import EngineUnavailable, InvalidRequest, Overloaded

RETRY_AFTER_BOUNDS = (1.0, 60.0)  # seconds; the SDKs honour Retry-After up to 60 s
_HOLD_SMOOTHING = 0.2  # weight of the newest slot hold time in the running average


@dataclass(eq=False)
class _Waiter:
    slots: int
    granted: asyncio.Future[None]


class Lease:
    """Slots admitted together. Each generation takes one with `slot()` and gives it back when it ends;
    closing the lease gives back the ones no generation took (a run that never started)."""

    def __init__(self, admission: Admission, slots: int) -> None:
        self._admission = admission
        self._untaken = slots

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self._untaken == 0:
            raise RuntimeError("every slot of this lease is taken")
        self._untaken -= 1
        started = time.monotonic()
        try:
            yield
        finally:
            self._admission._release(1, held=time.monotonic() - started)

    def close(self) -> None:
        untaken, self._untaken = self._untaken, 0
        if untaken:
            self._admission._release(untaken)


class Admission:
    def __init__(self, running_cap: int | None, queue_cap: int, max_wait: float) -> None:
        self.running_cap = running_cap
        self.queue_cap = queue_cap
        self.max_wait = max_wait
        self.running = 0  # slots held
        self._queue: deque[_Waiter] = deque()
        self._closed = False
        self._mean_hold = 1.0  # seconds a slot is held, smoothed; for the Retry-After estimate

    @property
    def waiting(self) -> int:
        """Requests queued now."""
        return len(self._queue)

    @asynccontextmanager
    async def admit(self, slots: int = 1) -> AsyncIterator[Lease]:
        """acquire(), with the lease's untaken slots given back on exit."""
        lease = await self.acquire(slots)
        try:
            yield lease
        finally:
            lease.close()

    async def acquire(self, slots: int = 1) -> Lease:
        """Wait for `slots` slots (rules 1-5 above). The caller closes the lease."""
        await self._acquire(slots)
        return Lease(self, slots)

    def close(self) -> None:
        """Shutting down: the queued and every later request get EngineUnavailable (503)."""
        self._closed = True
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.granted.done():
                waiter.granted.set_exception(EngineUnavailable("The server is shutting down."))

    def retry_after(self, slots: int = 1) -> float:
        """Seconds until this many slots would likely be free: the queue ahead of it, and then these, each
        served at the running cap's pace."""
        cap = self.running_cap or 1
        ahead = sum(w.slots for w in self._queue) + slots
        low, high = RETRY_AFTER_BOUNDS
        return float(min(high, max(low, math.ceil(self._mean_hold * ahead / cap))))

    async def _acquire(self, slots: int) -> None:
        if self._closed:
            raise EngineUnavailable("The server is shutting down.")
        cap = self.running_cap
        if cap is not None and slots > cap:
            raise InvalidRequest(f"This request runs {slots} generations at once, more than this server ever runs "
                                 f"together ({cap}, --max-running-requests).", param="n")
        if cap is None or (not self._queue and self.running + slots <= cap):
            self.running += slots
            return
        if len(self._queue) >= self.queue_cap:
            raise Overloaded(f"The server is busy ({self.running} generations running, {len(self._queue)} "
                             "requests queued); retry later.", retry_after=self.retry_after(slots))
        waiter = _Waiter(slots, asyncio.get_running_loop().create_future())
        self._queue.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait):
                await asyncio.shield(waiter.granted)
        except BaseException as exc:
            if waiter.granted.done() and not waiter.granted.cancelled() and waiter.granted.exception() is None:
                self._release(slots)  # granted just as the wait ended: give the slots back
            else:
                waiter.granted.cancel()
                if waiter in self._queue:
                    self._queue.remove(waiter)
                self._grant()  # a large request leaving the head may let smaller ones behind it in
            if isinstance(exc, TimeoutError):
                raise Overloaded(f"The server is busy: no generation slot came free within {self.max_wait:g} s; "
                                 "retry later.", retry_after=self.retry_after(slots)) from None
            raise

    def _release(self, slots: int, held: float | None = None) -> None:
        self.running -= slots
        if held is not None:
            self._mean_hold += _HOLD_SMOOTHING * (held - self._mean_hold)
        self._grant()

    def _grant(self) -> None:
        """Admit queued requests in order while the one at the head fits."""
        cap = self.running_cap
        while self._queue and (cap is None or self.running + self._queue[0].slots <= cap):
            waiter = self._queue.popleft()
            if not waiter.granted.done():
                self.running += waiter.slots
                waiter.granted.set_result(None)
