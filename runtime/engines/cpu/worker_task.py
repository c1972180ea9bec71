"""A function for the CPU engine's worker thread, which alone touches the model and the KV cache while it
serves: it is put in the worker's inbox like a sequence, run between two steps, and its result (or error)
handed back to the event loop that asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class WorkerTask:
    def __init__(self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        self._fn = fn
        self._loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def run(self) -> None:
        """On the worker thread."""
        try:
            result = self._fn()
        except Exception as exc:  # handed to the caller, never the worker's end
            self._loop.call_soon_threadsafe(self._settle, None, exc)
        else:
            self._loop.call_soon_threadsafe(self._settle, result, None)

    def cancel(self) -> None:
        """The worker stopped before running it."""
        self._loop.call_soon_threadsafe(lambda: self.future.done() or self.future.cancel())

    def _settle(self, result: Any, exc: Exception | None) -> None:
        if self.future.done():
            return
        if exc is not None:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)
