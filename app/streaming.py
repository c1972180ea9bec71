"""Running a prepared request from a handler: in-flight tracking, errors before the first output raised as
real HTTP errors, and cancellation when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from litestar import Request, Response

from app.state import ServiceState
from runtime.service import PreparedRequest
from runtime.types import ChatEvent

T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientDisconnected(Exception):
    pass


async def _events(state: ServiceState, prepared: PreparedRequest) -> AsyncIterator[ChatEvent]:
    async with state.request() as service:
        events = service.run(prepared)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]


async def start_events(state: ServiceState, prepared: PreparedRequest) -> AsyncIterator[ChatEvent]:
    """Start the run and wait for its first event, so a request the engine rejects (say, a grammar that
    does not compile) fails with a status code rather than inside a 200 stream."""
    events = _events(state, prepared)
    first = await anext(events)

    async def chained() -> AsyncIterator[ChatEvent]:
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await events.aclose()

    return chained()


def disconnected_response() -> Response:
    return Response(b"", status_code=499)  # nobody reads it; logged as nginx's "client closed request"


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first (no orphaned generation)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    raise ClientDisconnected()
