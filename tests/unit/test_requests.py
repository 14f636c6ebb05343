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
