"""guard(): a request whose connection drops fails at once with ConnectionResetError; other
cancellations stay cancellations."""

from __future__ import annotations

import asyncio

import pytest

from grctl.nats.requests import disconnected, guard


class Conn:
    """Stands for a nats-py client: guard() only uses it as a key."""


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_dropped_connection_fails_the_waiting_request_at_once() -> None:
    nc = Conn()
    waiting = asyncio.ensure_future(guard(nc, forever()))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    disconnected(nc)  # type: ignore[arg-type]
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(waiting, 1)


async def test_a_guard_inside_a_guard_is_still_guarded_after_the_inner_one_ends() -> None:
    nc = Conn()

    async def two_requests() -> None:
        await guard(nc, asyncio.sleep(0))  # type: ignore[arg-type]
        await forever()

    waiting = asyncio.ensure_future(guard(nc, two_requests()))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    disconnected(nc)  # type: ignore[arg-type]
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(waiting, 1)


async def test_other_connections_and_real_cancellations_are_left_alone() -> None:
    nc, other = Conn(), Conn()
    waiting = asyncio.ensure_future(guard(nc, forever()))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    disconnected(other)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not waiting.done()
    waiting.cancel()
    disconnected(nc)  # type: ignore[arg-type]  # both: the cancellation wins
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await guard(nc, asyncio.sleep(0, "ok")) == "ok"  # type: ignore[arg-type]


async def test_a_cancel_that_lands_with_the_reply_is_not_dropped() -> None:
    """Python 3.11's wait_for (inside nats-py's request) returns a reply that arrived in the same turn
    of the loop as a cancel and forgets the cancel; guard() raises it, so a stopping loop stops."""
    nc = Conn()
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    went_on = asyncio.Event()

    async def reads_then_sleeps() -> None:
        await guard(nc, asyncio.wait_for(reply, 5))  # type: ignore[arg-type]
        went_on.set()
        await forever()

    task = asyncio.ensure_future(reads_then_sleeps())
    await asyncio.sleep(0)
    reply.set_result("the reply")
    task.cancel()  # in the same turn as the reply
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()
    assert not went_on.is_set()


async def test_a_reply_that_came_despite_a_dropped_connection_is_returned() -> None:
    nc = Conn()
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(guard(nc, asyncio.wait_for(reply, 5)))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    reply.set_result("the reply")
    disconnected(nc)  # type: ignore[arg-type]  # cancels the waiter in the turn the reply landed
    assert await asyncio.wait_for(waiting, 2) == "the reply"
