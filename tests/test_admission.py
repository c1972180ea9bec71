"""runtime/admission.py on its own: slots, the queue's order and bounds, and what each refusal is."""

from __future__ import annotations

import asyncio

import pytest

from runtime.admission import Admission
from runtime.errors import EngineUnavailable, InvalidRequest, Overloaded


def run(coro):
    return asyncio.run(coro)


def test_runs_at_once_below_the_cap_and_queues_above_it_in_order():
    async def main() -> list[str]:
        admission = Admission(running_cap=2, queue_cap=4, max_wait=5)
        order: list[str] = []
        first = await admission.acquire(2)

        async def queued(name: str, slots: int) -> None:
            async with admission.admit(slots) as lease:
                order.append(name)
                with lease.slot():
                    await asyncio.sleep(0.01)

        tasks = [asyncio.ensure_future(queued(name, slots)) for name, slots in (("a", 2), ("b", 1), ("c", 1))]
        await asyncio.sleep(0.01)
        assert admission.waiting == 3 and order == []
        first.close()
        await asyncio.gather(*tasks)
        assert admission.running == 0 and admission.waiting == 0
        return order

    assert run(main()) == ["a", "b", "c"]


def test_refusals():
    async def main() -> None:
        admission = Admission(running_cap=1, queue_cap=1, max_wait=0.2)
        with pytest.raises(InvalidRequest) as err:
            await admission.acquire(2)
        assert err.value.param == "n"
        held = await admission.acquire(1)
        waiter = asyncio.ensure_future(admission.acquire(1))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as full:  # the queue is full: at once
            await admission.acquire(1)
        assert full.value.retry_after >= 1
        with pytest.raises(Overloaded):  # the wait ran out
            await waiter
        assert admission.waiting == 0
        cancelled = asyncio.ensure_future(admission.acquire(1))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        assert admission.waiting == 0 and admission.running == 1
        closing = asyncio.ensure_future(admission.acquire(1))
        await asyncio.sleep(0.01)
        admission.close()
        with pytest.raises(EngineUnavailable):
            await closing
        with pytest.raises(EngineUnavailable):
            await admission.acquire(1)
        held.close()
        assert admission.running == 0

    run(main())


def test_no_cap_never_queues():
    async def main() -> None:
        admission = Admission(running_cap=None, queue_cap=0, max_wait=0)
        leases = [await admission.acquire(3) for _ in range(100)]
        assert admission.running == 300 and admission.waiting == 0
        for lease in leases:
            lease.close()
        assert admission.running == 0

    run(main())
