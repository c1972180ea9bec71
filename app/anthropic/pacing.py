"""Keeping a stream alive while the engine is busy: a long prefill can take minutes before the first token.

The handler starts the run and waits a short grace period for its first event, so errors the engine raises
at once (a grammar that does not compile, no engine) are still real HTTP statuses. After that it sends the
headers and message_start, and `with_pings` interleaves a ping whenever the engine has been silent for a
while; an error that arrives later goes out in-band.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from app.anthropic.schemas import Ping
from runtime.types import ChatEvent

FIRST_EVENT_GRACE_S = 1.0
PING_INTERVAL_S = 5.0
PING = Ping()
_END = object()


async def _next(events: AsyncIterator[ChatEvent]) -> ChatEvent | object:
    return await anext(events, _END)


async def with_pings(starting: asyncio.Future[AsyncIterator[ChatEvent]],
                     interval: float = PING_INTERVAL_S) -> AsyncGenerator[ChatEvent | Ping, None]:
    """The events of the run that `starting` resolves to, with PING whenever `interval` seconds pass without
    one. `starting`'s failure is raised from here. Closing this generator cancels what is still pending and
    closes the run (which aborts the generation)."""
    events: AsyncIterator[ChatEvent] | None = None
    pending: asyncio.Future[Any] = starting
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield PING
                continue
            if events is None:
                events = pending.result()
            else:
                event = pending.result()
                if event is _END:
                    return
                yield event
            pending = asyncio.ensure_future(_next(events))
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
        if events is None and starting.done() and not starting.cancelled() and starting.exception() is None:
            events = starting.result()
        if events is not None:
            await events.aclose()  # type: ignore[attr-defined]  # start_events returns an async generator
