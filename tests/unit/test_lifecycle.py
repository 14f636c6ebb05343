"""The stop race: work against stop events and a timeout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import sys

from grctl.lifecycle import cancel, on_signals, until_stopped


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


async def _swallows_one_cancel(ready: asyncio.Event, result: asyncio.Future[int]) -> None:
    """A loop whose wait can drop a cancellation: Python 3.11's ``asyncio.wait_for`` (used inside
    nats-py too) returns a result that arrived together with the cancel and forgets the cancel."""
    await asyncio.wait_for(result, 5)
    ready.set()
    await asyncio.Event().wait()  # forever, unless cancelled again


async def test_cancel_ends_work_that_dropped_the_first_cancellation() -> None:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[int] = loop.create_future()
    ready = asyncio.Event()
    work = asyncio.ensure_future(_swallows_one_cancel(ready, result))
    await asyncio.sleep(0)  # the work waits on the result
    result.set_result(1)  # the reply and the cancel land in the same turn of the loop
    stopping = asyncio.ensure_future(cancel(work))
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done, "cancel() did not end a task that dropped one cancellation"
    assert work.cancelled()
    if sys.version_info < (3, 12):  # the first cancellation was dropped: the work went on past its wait
        assert ready.is_set()


async def test_on_signals_hears_a_signal_while_inside_and_removes_its_handler_on_the_way_out() -> None:
    heard: list[signal.Signals] = []
    got = asyncio.Event()

    def handler(signum: signal.Signals) -> None:
        heard.append(signum)
        got.set()

    loop = asyncio.get_running_loop()
    with on_signals(handler, signal.SIGUSR1):
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(got.wait(), 5)
    assert heard == [signal.SIGUSR1]
    assert loop.remove_signal_handler(signal.SIGUSR1) is False  # none left installed


def test_on_signals_off_the_main_thread_installs_nothing() -> None:
    async def inside() -> bool:
        with on_signals(lambda _: None, signal.SIGUSR1):
            return True

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, inside()).result(timeout=10) is True
