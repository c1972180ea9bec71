"""The SSE response: Litestar's Stream, with its body sent and the client's disconnect watched by plain asyncio
tasks instead of an anyio task group.

Same behaviour as Litestar's: the body is sent until it ends or the client disconnects, which cancels it (the
body's `finally` then closes its run, app/streaming.py). What it saves is per request: anyio's task group, and
its cancel scope's `cancel()`, which formats the repr of the current task each time (anyio 4.16) and cost
about 3 % of the replay server's CPU (bench/RESULTS.md, section 7).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.response import Stream
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send


class SSEStream(Stream):
    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIStreamingResponse:  # type: ignore[override]
        response = super().to_asgi_response(*args, **kwargs)
        response.__class__ = _Streaming  # the same object, our send_body (no new fields: a safe swap)
        return response


class _Streaming(ASGIStreamingResponse):
    __slots__ = ()

    async def send_body(self, send: Send, receive: Receive) -> None:
        streaming = asyncio.ensure_future(self._stream(send))
        watching = asyncio.ensure_future(_disconnect(receive))
        try:
            await asyncio.wait((streaming, watching), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            streaming.cancel()  # (when still running: the client left, or this task is being cancelled)
            await asyncio.gather(streaming, return_exceptions=True)  # the body's own end first
        if not streaming.cancelled() and streaming.exception() is not None:
            raise streaming.exception()  # type: ignore[misc]


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
