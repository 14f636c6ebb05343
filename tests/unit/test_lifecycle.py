"""The stop race: work against stop events and a timeout."""

from __future__ import annotations

import asyncio

from grctl.lifecycle import cancel, until_stopped


async def test_the_work_wins_when_it_finishes_first() -> None:
    stop = asyncio.Event()
    work = asyncio.ensure_future(asyncio.sleep(0, result="done"))
    assert await until_stopped(work, stop) is True
    assert work.result() == "done"


async def test_a_stop_wins_and_leaves_the_work_running() -> None:
    stop, other = asyncio.Event(), asyncio.Event()
    work = asyncio.ensure_future(asyncio.sleep(30))
    asyncio.get_running_loop().call_later(0.01, other.set)
    assert await until_stopped(work, stop, other) is False
    assert not work.done()
    await cancel(work)
    assert work.cancelled()


async def test_a_timeout_ends_the_wait() -> None:
    work = asyncio.ensure_future(asyncio.sleep(30))
    assert await until_stopped(work, asyncio.Event(), timeout=0.01) is False
    await cancel(work)


async def test_cancelling_the_waiter_cancels_the_work() -> None:
    work = asyncio.ensure_future(asyncio.sleep(30))
    waiter = asyncio.ensure_future(until_stopped(work, asyncio.Event()))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await asyncio.sleep(0)
    assert work.cancelled()
