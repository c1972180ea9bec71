"""Running a prepared request from a handler: in-flight tracking, errors before the first output raised as
real HTTP errors, and cancellation when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from typing import TypeVar

from litestar import Request, Response

from app.state import ServiceState
from runtime.admission import Lease
from runtime.errors import EngineUnavailable
from runtime.service import PreparedRequest
from runtime.types import ChatEvent, ChatFinished, FinishReason

T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientDisconnected(Exception):
    pass


async def _events(state: ServiceState, prepared: PreparedRequest, lease: Lease) -> AsyncIterator[ChatEvent]:
    async with state.running(lease, prepared) as service:
        events = state.metrics.observe(service.run(prepared))
        try:
            async for event in events:
                if isinstance(event, ChatFinished) and event.reason is FinishReason.ABORT and state.cut_off:
                    # Aborted by the shutdown's cut-off: an error in the client's dialect, not a quiet finish.
                    raise EngineUnavailable("The server is shutting down; this generation was stopped before "
                                            "it finished.")
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]


async def start_events(state: ServiceState, prepared: PreparedRequest, lease: Lease) -> AsyncIterator[ChatEvent]:
    """Start the run on one of the lease's slots and wait for its first event, so a request the engine
    rejects (say, a grammar that does not compile) fails with a status code rather than inside a 200 stream."""
    events = _events(state, prepared, lease)
    first = await anext(events)

    async def chained() -> AsyncIterator[ChatEvent]:
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await events.aclose()

    return chained()


async def all_or_none(works: list[Awaitable[T]]) -> list[T]:
    """Await every work; if one fails (or the caller is cancelled), the others are cancelled too."""
    tasks = [asyncio.ensure_future(w) for w in works]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


async def merged(streams: list[AsyncIterator[ChatEvent]]) -> AsyncIterator[tuple[int, ChatEvent]]:
    """Several runs' events as they come, each tagged with its run's index (OpenAI's n > 1). Closing this
    closes them all; a run that fails ends the whole stream with its error."""
    if len(streams) == 1:
        async with aclosing(streams[0]):
            async for event in streams[0]:
                yield 0, event
        return
    queue: asyncio.Queue[tuple[int, ChatEvent | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[ChatEvent]) -> None:
        try:
            async for event in stream:
                queue.put_nowait((index, event))
        except Exception as exc:
            queue.put_nowait((index, exc))
        finally:
            queue.put_nowait((index, None))

    tasks = [asyncio.ensure_future(pump(i, stream)) for i, stream in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]


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
