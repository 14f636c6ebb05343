"""The pull loop on its own, with a scripted subscription: shared capacity, the handler's decisions,
heartbeats for held messages, NAK of what arrives after stop, binding again after repeated failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import nats.js.errors
from support.fakes import FakeMsg

from grctl.nats.pull import ACK, TERM, Capacity, Decision, PullLoop, nak


class ScriptedSub:
    """A pull subscription whose fetches hand out queued messages (or raise what ``fail`` says)."""

    def __init__(self, msgs: list[FakeMsg] | None = None) -> None:
        self.msgs = list(msgs or [])
        self.asked: list[int] = []
        self.fail: Exception | None = None
        self.unsubscribed = False
        self.gate: asyncio.Event | None = None  # a fetch in progress waits for it

    async def fetch(self, batch: int, timeout: float) -> list[FakeMsg]:
        self.asked.append(batch)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        if not self.msgs:
            await asyncio.sleep(timeout)
            raise TimeoutError
        taken, self.msgs = self.msgs[:batch], self.msgs[batch:]
        return taken

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


def binder(*subs: ScriptedSub) -> tuple[Callable[[], Any], list[ScriptedSub]]:
    bound: list[ScriptedSub] = []
    queue = list(subs)

    async def bind() -> ScriptedSub:
        sub = queue.pop(0) if len(queue) > 1 else queue[0]
        bound.append(sub)
        return sub

    return bind, bound


def messages(n: int, prefix: str = "m") -> list[FakeMsg]:
    return [FakeMsg(f"{prefix}{i}".encode(), subject=f"s.{prefix}{i}") for i in range(n)]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_loops_sharing_a_capacity_never_hold_more_than_it() -> None:
    release = asyncio.Event()
    running = 0
    most = 0

    async def handler(msg: FakeMsg) -> Decision:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return ACK

    capacity = Capacity(3)
    sent = [messages(10, "a"), messages(10, "b")]
    subs = [ScriptedSub(batch) for batch in sent]
    loops = [PullLoop(f"L{i}", binder(sub)[0], handler, capacity=capacity, batch=8, fetch_timeout=0.05)
             for i, sub in enumerate(subs)]
    for loop in loops:
        await loop.bind()
        loop.start()
    await until(lambda: running == 3)
    assert most == 3 and capacity.free == 0
    assert all(asked <= 3 for sub in subs for asked in sub.asked)
    release.set()
    await until(lambda: not any(sub.msgs for sub in subs))
    for loop in loops:
        await loop.stop()
        assert await loop.wait_idle(5)
        await loop.close()
    assert most == 3 and capacity.free == 3
    assert all(m.settled == ["ack"] for batch in sent for m in batch)


async def test_loops_sharing_one_slot_take_turns() -> None:
    """With a single slot, a loop whose fetches come back empty must not keep it from the others."""
    handled: list[str] = []

    async def handler(msg: FakeMsg) -> Decision:
        handled.append(msg.subject)
        return ACK

    capacity = Capacity(1)
    idle, busy = ScriptedSub(), ScriptedSub(messages(3, "b"))
    loops = [PullLoop(name, binder(sub)[0], handler, capacity=capacity, batch=8, fetch_timeout=0.05)
             for name, sub in (("idle", idle), ("busy", busy))]
    for loop in loops:
        await loop.bind()
    for loop in loops:  # the idle loop first: it holds the slot when the other one starts
        loop.start()
    await until(lambda: len(handled) == 3, timeout=3)
    for loop in loops:
        await loop.stop()
        await loop.close()
    assert capacity.free == 1


async def test_freed_slots_go_to_waiting_loops_in_turn_and_never_below_zero() -> None:
    capacity = Capacity(2)
    assert await capacity.acquire(8) == 2
    second = asyncio.ensure_future(capacity.acquire(8))
    third = asyncio.ensure_future(capacity.acquire(8))
    await asyncio.sleep(0)
    assert not second.done() and not third.done()
    capacity.give(2)  # both are called; the first in line takes both slots
    assert await second == 2
    await asyncio.sleep(0)
    assert not third.done() and capacity.free == 0
    late = asyncio.ensure_future(capacity.acquire(8))  # arrives after the third: waits behind it
    capacity.give(1)
    assert await third == 1
    await asyncio.sleep(0)
    assert not late.done()
    late.cancel()  # leaving the line costs nothing
    capacity.give(1)
    assert capacity.free == 1 and await capacity.acquire(8) == 1


async def test_each_message_is_settled_as_its_handler_decided() -> None:
    msgs = messages(5)
    decisions: dict[bytes, Decision | None] = {b"m0": ACK, b"m1": TERM, b"m2": nak(3.0), b"m3": None}

    async def handler(msg: FakeMsg) -> Decision | None:
        if msg.data == b"m4":
            raise RuntimeError("a bug in the handler")
        return decisions[msg.data]

    loop = PullLoop("L", binder(ScriptedSub(msgs))[0], handler, slots=8, fetch_timeout=0.05)
    loop.start()
    await until(lambda: all(m.settled for m in msgs if m.data != b"m3"))
    await loop.close()
    assert [m.settled for m in msgs] == [["ack"], ["term"], ["nak"], [], ["nak"]]


async def test_held_messages_get_in_progress_acks() -> None:
    release = asyncio.Event()

    async def handler(msg: FakeMsg) -> Decision:
        await release.wait()
        return ACK

    [slow] = messages(1)
    loop = PullLoop("L", binder(ScriptedSub([slow]))[0], handler, fetch_timeout=0.05, heartbeat=0.05)
    loop.start()
    await until(lambda: slow.progress >= 2)
    release.set()
    await until(lambda: slow.settled == ["ack"])
    await loop.close()


async def test_messages_fetched_after_stop_go_back_at_once() -> None:
    late = messages(3)
    sub = ScriptedSub(late)
    sub.gate = asyncio.Event()  # the fetch is in flight when stop() is called
    handled: list[bytes] = []

    async def handler(msg: FakeMsg) -> Decision:
        handled.append(msg.data)
        return ACK

    loop = PullLoop("L", binder(sub)[0], handler, fetch_timeout=0.05)
    loop.start()
    await until(lambda: bool(sub.asked))
    stopping = asyncio.create_task(loop.stop(timeout=5))
    await asyncio.sleep(0.01)
    sub.gate.set()
    await stopping
    assert handled == [] and [m.settled for m in late] == [["nak"]] * 3
    await loop.close()


async def test_a_lost_consumer_is_bound_again() -> None:
    broken = ScriptedSub()
    broken.fail = nats.js.errors.NotFoundError(code=404, err_code=10014, description="consumer not found")
    healthy = ScriptedSub(messages(2))
    bind, bound = binder(broken, healthy)
    acked: list[bytes] = []

    async def handler(msg: FakeMsg) -> Decision:
        acked.append(msg.data)
        return ACK

    loop = PullLoop("L", bind, handler, fetch_timeout=0.05)
    loop.start()
    await until(lambda: len(acked) == 2, timeout=10)
    await loop.close()
    assert bound[0] is broken and healthy in bound and broken.unsubscribed
    assert len(broken.asked) == 1  # bound again after the first "not found", no waiting


async def test_cancelled_handlers_give_their_messages_back() -> None:
    [stuck] = messages(1)

    async def handler(msg: FakeMsg) -> Decision:
        await asyncio.sleep(3600)
        return ACK

    loop = PullLoop("L", binder(ScriptedSub([stuck]))[0], handler, fetch_timeout=0.05)
    loop.start()
    await until(lambda: loop.in_flight == 1)
    await loop.stop()
    assert not await loop.wait_idle(0.05)
    await loop.cancel_running()
    await loop.close()
    assert stuck.settled == ["nak"] and loop.capacity.free == loop.capacity.slots
