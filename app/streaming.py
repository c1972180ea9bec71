"""The one owner of a request's generations, for every dialect: admission, start, keep-alives, disconnects,
the abort-means-503 rule, and the end of the run, all here; dialects supply only pure functions.

A request's life (n runs: OpenAI's `n`, 1 elsewhere):
1. The route prepares its runs (app/preparing.py) and calls `respond` (a whole answer) or `stream`.
2. Admission gives it n slots, waiting in the queue if need be (429 when full). A client that disconnects
   meanwhile cancels everything: 499, nothing orphaned.
3. `Run` starts one task per run, each feeding engine events through the service (parser, stop strings) into
   one queue. That queue is all a consumer reads: `(index, ChatEvent)` items, and KEEP_ALIVE when the runs
   have been silent for `keep_alive_interval` seconds.
4. A whole answer folds every event into a ChatResult per run (runtime/result.py) and hands the list to the
   dialect. A stream waits up to `first_byte_grace` seconds for every run's first event, so errors the engine
   raises at once (a grammar that does not compile) are still real statuses; then it sends the headers, and
   a keep-alive at once if no event has come yet (a long prefill must not leave a client with no bytes).
5. A run that ends aborted (the shutdown's cut-off) raises EngineUnavailable, in-band once the headers are
   sent: no dialect ever renders an aborted finish.
6. However the response ends (done, error, client gone), `Run.close` cancels the tasks, which aborts
   engine requests still running, and gives the slots back.

How a dialect plugs in (see app/openai/routes.py, app/anthropic/routes.py):
- schemas + convert: its request -> a neutral ChatRequest -> `service.prepare_chat(chat, rid)` per run, with
  the engine ids from `app.request_id.engine_rids`.
- render: `list[ChatResult]` -> its response struct, for `respond`; and a `StreamEncoder` (below), pure and
  synchronous, turning events into its SSE records (framed by app/sse.py), for `stream`. An encoder that
  also needs the whole answer (to store it, to close with a final snapshot) folds the events it is given
  with `runtime.result.accumulate`, as `respond` does.
- a new event kind (reasoning text, say) is a type in runtime/types.py's ChatEvent, a case in
  `accumulate`, and a case in each encoder; the owner passes every ChatEvent through as it is.
Nothing in this module changes for a new dialect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Protocol, TypeVar

from litestar import Request, Response

from app import sse
from app.sse_response import SSEStream
from app.errors import as_service_error
from app.state import ServiceState
from runtime.admission import Lease
from runtime.errors import EngineUnavailable, ServiceError
from runtime.result import ChatResult, accumulate
from runtime.service import PreparedRequest
from runtime.types import ChatEvent, ChatFinished, FinishReason

log = logging.getLogger(__name__)
T = TypeVar("T")


class KeepAlive:
    """The runs have been silent a while: the stream should send something its client ignores."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP_ALIVE"


KEEP_ALIVE = KeepAlive()
Item = tuple[int, ChatEvent] | KeepAlive


class StreamEncoder(Protocol):
    """A dialect's stream, as bytes: pure and synchronous, one instance per response. Every method returns
    the SSE records to send (b"" for none); the owner joins what is ready into one write."""

    def start(self) -> bytes:
        """Sent with the headers (Anthropic's message_start)."""

    def event(self, index: int, event: ChatEvent) -> bytes:
        """Run `index`'s next event (never an aborted finish)."""

    def keep_alive(self) -> bytes:
        """Something the client ignores (an SSE comment, Anthropic's ping)."""

    def flush(self) -> bytes:
        """The end of a batch of events that came at once: anything held back to be joined with what might
        have followed it in the batch (OpenAI's streams put a choice's finish_reason on its last token's
        chunk when the two come together, as vLLM and SGLang do)."""

    def end(self) -> bytes:
        """Every run has finished (a usage chunk, OpenAI's [DONE])."""

    def error(self, err: ServiceError) -> bytes:
        """The stream failed after the headers: the error in the dialect's in-band shape, and its end."""


class ClientDisconnected(Exception):
    pass


# -- the run -----------------------------------------------------------------------------------------------

_ENDED = None  # a run's last queue item: (index, _ENDED)


class Run:
    """n generations of one request, each a task feeding one queue; the consumer reads `batches()`."""

    def __init__(self, state: ServiceState, prepared: list[PreparedRequest], lease: Lease) -> None:
        self._state = state
        self._lease = lease
        self._queue: asyncio.Queue[tuple[int, ChatEvent | Exception | None] | KeepAlive] = asyncio.Queue()
        self._running = len(prepared)
        self._early: list[Item] = []  # events read while waiting for the first ones
        self._puts = 0  # events queued so far (the keep-alive timer's sign of life)
        self._tasks = [asyncio.ensure_future(self._generate(i, p)) for i, p in enumerate(prepared)]
        self._timer: asyncio.Task[None] | None = None

    async def _generate(self, index: int, prepared: PreparedRequest) -> None:
        metrics = self._state.metrics.generation()
        try:
            async with self._state.running(self._lease, prepared) as service:
                async with aclosing(service.run(prepared)) as events:  # type: ignore[type-var]
                    async for event in events:
                        metrics.see(event)
                        if isinstance(event, ChatFinished):
                            self._finished(prepared, event)
                        self._puts += 1
                        self._queue.put_nowait((index, event))
        except asyncio.CancelledError:
            metrics.outcome = "cancelled" if metrics.outcome == "error" else metrics.outcome
            raise
        except Exception as exc:  # the consumer raises it, where it reads it
            self._queue.put_nowait((index, exc))
        finally:
            metrics.end()
            self._queue.put_nowait((index, _ENDED))

    def _finished(self, prepared: PreparedRequest, event: ChatFinished) -> None:
        u = event.usage
        log.info("%s: %s, %d prompt tokens (%d cached), %d output tokens", prepared.rid, event.reason.value,
                 u.prompt_tokens, u.cached_tokens, u.completion_tokens)
        if event.reason is FinishReason.ABORT:  # the one place an aborted run becomes an error
            if self._state.cut_off:
                raise EngineUnavailable("The server is shutting down; this generation was stopped before it "
                                        "finished.")
            raise EngineUnavailable("The request was aborted because the server is shutting down.")

    @property
    def ended(self) -> bool:
        """Every run has ended: the batch just read was the last."""
        return not self._running

    @property
    def has_events(self) -> bool:
        """Events came while waiting for the first ones (and are not read yet)."""
        return bool(self._early)

    async def first_events(self, timeout: float | None) -> bool:
        """Wait until every run has sent its first event (True) or `timeout` passes (False). A run that fails
        first raises its error here."""
        waiting = set(range(len(self._tasks)))
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while waiting:
            try:
                async with asyncio.timeout_at(deadline):
                    item = await self._queue.get()
            except TimeoutError:
                return False
            assert not isinstance(item, KeepAlive)  # the timer starts with batches()
            index, event = item
            if isinstance(event, Exception):
                raise event
            if event is _ENDED:  # (after its events: a run ends only after its ChatFinished or an error)
                self._running -= 1
                continue
            self._early.append((index, event))
            waiting.discard(index)
        return True

    async def batches(self, keep_alive: float | None = None) -> AsyncIterator[list[Item]]:
        """Every item, in order, as lists of what is ready at once (the events read while waiting for the
        first ones lead the first list, with whatever else is ready then); KEEP_ALIVE after `keep_alive` silent
        seconds. A run's error is raised after the items before it. Ends when every run has."""
        if keep_alive is not None:
            self._timer = asyncio.ensure_future(self._keep_alive(keep_alive))
        batch, self._early = self._early, []
        queue = self._queue
        while batch or self._running:
            item = await queue.get() if not batch else (None if queue.empty() else queue.get_nowait())
            while item is not None:
                if isinstance(item, KeepAlive):
                    batch.append(item)
                else:
                    index, event = item
                    if event is _ENDED:
                        self._running -= 1
                    elif isinstance(event, Exception):
                        if batch:
                            yield batch
                        raise event
                    else:
                        batch.append(item)  # type: ignore[arg-type]
                item = None if queue.empty() else queue.get_nowait()
            if batch:
                yield batch
            batch = []

    async def _keep_alive(self, interval: float) -> None:
        seen = -1
        while True:
            await asyncio.sleep(interval)
            if self._puts == seen:
                self._queue.put_nowait(KEEP_ALIVE)
            seen = self._puts

    async def close(self) -> None:
        """Cancel what still runs (aborting its engine requests) and give the slots back."""
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._lease.close()


async def _open(state: ServiceState, prepared: list[PreparedRequest], first_events: float | None) -> Run:
    """Admitted, started, and (unless `first_events` is None) its first events awaited that long."""
    lease = await state.lease(len(prepared))
    run = Run(state, prepared, lease)
    try:
        if first_events is not None:
            await run.first_events(first_events)
    except BaseException:
        await run.close()
        raise
    return run


# -- what routes call --------------------------------------------------------------------------------------


async def results(request: Request, state: ServiceState, prepared: list[PreparedRequest]) -> list[ChatResult]:
    """Every run's whole answer: the fold of the events its stream would have sent. ClientDisconnected if the
    client goes away first."""

    async def fold() -> list[ChatResult]:
        run = await _open(state, prepared, None)
        out = [ChatResult() for _ in prepared]
        try:
            async for batch in run.batches():
                for item in batch:
                    if not isinstance(item, KeepAlive):
                        accumulate(out[item[0]], item[1])
        finally:
            await run.close()
        return out

    return await _unless_disconnected(request, fold())


async def respond(request: Request, state: ServiceState, prepared: list[PreparedRequest],
                  answer: Callable[[list[ChatResult]], Response],
                  finishing: Callable[[list[ChatResult]], Awaitable[None]] | None = None) -> Response:
    """A whole answer, `answer(results)`; a client gone first gets 499 (nobody reads it). `finishing`, where
    given, is awaited with the results first: server-held state (a stored response, a thread's turn) is written
    before the client has the answer."""
    try:
        done = await results(request, state, prepared)
    except ClientDisconnected:
        return _disconnected()
    if finishing is not None:
        await finishing(done)
    return answer(done)


async def stream(request: Request, state: ServiceState, prepared: list[PreparedRequest],
                 encoder: StreamEncoder, finishing: Callable[[], Awaitable[None]] | None = None) -> Response:
    """The runs as one SSE response. Errors until the first events (or the grace time) are statuses; later
    ones go out in-band through `encoder.error`. `finishing`, where given, is awaited once every run has
    finished and before `encoder.end()`: server-held state is written before the client sees the end (an
    encoder holds its last records back for `end()` where they would otherwise go out earlier)."""
    settings = state.settings
    try:
        run = await _unless_disconnected(request, _open(state, prepared, settings.first_byte_grace))
    except ClientDisconnected:
        return _disconnected()

    async def body() -> AsyncIterator[bytes]:
        last = b""  # without `finishing`, the last batch goes out with the end: one write fewer
        try:
            head = encoder.start()
            if not run.has_events:  # nothing yet: the headers and a keep-alive go out now
                yield head + encoder.keep_alive()
                head = b""
            async for batch in run.batches(settings.keep_alive_interval):
                out = b"".join([encoder.keep_alive() if isinstance(item, KeepAlive) else encoder.event(*item)
                                for item in batch]) + encoder.flush()
                if head:
                    out, head = head + out, b""
                if run.ended and finishing is None:
                    last = out
                elif out:
                    yield out
            if finishing is not None:
                await finishing()
            yield head + last + encoder.end()
        except Exception as exc:  # noqa: BLE001  # the headers are sent: every failure goes out in-band
            yield last + encoder.error(as_service_error(exc))
        finally:
            await run.close()

    return SSEStream(body(), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)


def _disconnected() -> Response:
    return Response(b"", status_code=499)  # nobody reads it; logged as nginx's "client closed request"


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
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
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    try:
        await task
    except asyncio.CancelledError:
        pass
    raise ClientDisconnected()
