"""Events from the worker thread to the event loop: one hand-off per scheduler step, not one per event.

Each `loop.call_soon_threadsafe` writes a byte to the loop's self-pipe and wakes the loop, which then takes the
GIL from the worker between two of its torch ops. A step of 16 streams emitted 16 to 32 such wake-ups (a
TextDelta each, TokenIds or Logprobs when asked for), all while the worker went on to the next forward pass;
held during a step, they reach the loop as one call, in the order they were emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Iterator


class Outbox:
    """Used from the worker thread only."""

    def __init__(self) -> None:
        self._held: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue, Any]] | None = None

    def send(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, event: Any) -> None:
        if self._held is None:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        else:
            self._held.append((loop, queue, event))

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Events sent inside are delivered when it ends (also when it ends by an exception)."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, Any]]] = {}
            for loop, queue, event in held:
                by_loop.setdefault(loop, []).append((queue, event))
            for loop, items in by_loop.items():
                loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[tuple[asyncio.Queue, Any]]) -> None:
    for queue, event in items:
        queue.put_nowait(event)
