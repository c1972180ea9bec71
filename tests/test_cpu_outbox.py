"""The CPU engine's outbox (runtime/engines/cpu/outbox.py): events sent while a step holds it reach the event
loop together when the step ends, in order, also when the step raises; outside a step they go at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runtime.engines.cpu.outbox import Outbox


def run_worker(body) -> None:
    """`body(loop)` on a worker thread while the loop runs; returns when both are done."""

    async def main():
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(body, loop)

    asyncio.run(main())


def test_held_events_arrive_when_the_step_ends_in_order():
    outbox, first, second = Outbox(), asyncio.Queue(), asyncio.Queue()
    seen_inside: list[bool] = []

    def step(loop):
        with outbox.holding():
            outbox.send(loop, first, 1)
            outbox.send(loop, second, "a")
            outbox.send(loop, first, 2)
            # Give the loop time to run anything already handed to it: nothing has been.
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(5)
            seen_inside.append(first.empty() and second.empty())
        outbox.send(loop, first, 3)  # not held
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(5)

    run_worker(step)
    assert seen_inside == [True]
    assert [first.get_nowait() for _ in range(3)] == [1, 2, 3] and second.get_nowait() == "a"


def test_a_step_that_raises_still_delivers_what_it_sent():
    outbox, events = Outbox(), asyncio.Queue()

    def step(loop):
        with pytest.raises(RuntimeError), outbox.holding():
            outbox.send(loop, events, "finished")
            raise RuntimeError("forward pass failed")
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(5)

    run_worker(step)
    assert events.get_nowait() == "finished"
