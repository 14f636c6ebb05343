"""The pull loop: fetch messages from a durable JetStream consumer in batches and run a handler per
message, for the engine's consumers and the worker's alike.

- Capacity: a loop fetches only as many messages as it has free slots, so a process never holds more
  than it can work on (what it cannot take stays in the stream, where no ack timer runs). Several loops
  can share one ``Capacity`` (a worker's step slots, shared by the consumers of its workflow types).
- The handler returns what to do with its message (``ACK``, ``TERM``, ``nak(delay)``) or None when
  there is nothing to settle (another delivery of the same message settles it). A handler that raises
  is logged with its traceback and its message is NAKed after a pause.
- Heartbeats: while a handler holds a message longer than ``heartbeat`` seconds, the loop sends
  in-progress acks so the consumer's (short) ack wait does not redeliver work that is still going on;
  a message held by a process that died comes back after one ack wait.
- Trouble never ends a loop silently: fetch errors are logged and retried with backoff, and the
  consumer is bound again (created again if it was lost) after repeated failures.
- ``stop()`` closes the intake: messages a fetch returns after that are NAKed at once so another
  consumer process takes them; ``wait_idle()`` waits for running handlers; ``cancel_running()``
  cancels them (their messages are NAKed).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from grctl import settings
from grctl.lifecycle import cancel, until_stopped
from grctl.nats import subjects
from grctl.ops import metrics

log = logging.getLogger(__name__)



class Action(enum.Enum):
    ACK = "ack"
    NAK = "nak"
    TERM = "term"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay: float | None = None


ACK = Decision(Action.ACK)
TERM = Decision(Action.TERM)
NAK = Decision(Action.NAK)


def nak(delay: float | None = None) -> Decision:
    return Decision(Action.NAK, delay)


Handler = Callable[[Msg], Awaitable[Decision | None]]
Bind = Callable[[], Awaitable[JetStreamContext.PullSubscription]]


def bind_durable(js: JetStreamContext, durable: str, config: ConsumerConfig,
                 stream: str = subjects.STREAM) -> Bind:
    """A ``Bind`` that creates (or updates) the durable pull consumer ``durable`` with ``config`` and
    binds to it: binding again after a server lost the consumer makes it anew."""

    async def bind() -> JetStreamContext.PullSubscription:
        config.durable_name = durable
        await js.add_consumer(stream, config)
        return await js.pull_subscribe_bind(durable, stream=stream)

    return bind


async def settle(msg: Msg, decision: Decision) -> None:
    """Ack, NAK or terminate ``msg``; a failure is logged (the server redelivers after its ack wait)."""
    try:
        if decision.action is Action.ACK:
            await msg.ack()
        elif decision.action is Action.TERM:
            await msg.term()
        else:
            await msg.nak(delay=decision.delay)
    except Exception as exc:
        log.warning("could not %s message %s: %s", decision.action.value, msg.subject, exc)


class Capacity:
    """Slots shared by the pull loops of one process, handed out in turn.

    A loop holds the slots it asked for while its fetch waits, so with fewer slots than loops a loop
    whose fetches come back empty could take them again before the loops waiting for them wake up, and
    starve them: ``acquire`` queues loops in arrival order and gives freed slots to the first in line.
    """

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.free = self.slots
        self.loops = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._called = 0  # loops woken for freed slots that have not taken them yet

    def share(self, batch: int) -> int:
        """How many messages one loop may ask for now: its share of the free slots, at most ``batch``."""
        return min(batch, max(1, self.free // max(1, self.loops)), self.free)

    async def acquire(self, batch: int) -> int:
        """Wait for this loop's turn and take its share of the free slots (at least one)."""
        if self.free <= 0 or self._waiting or self._called:
            await self._turn(first=False)
        while self.free <= 0:  # a loop called before this one took what was free: next in line again
            await self._turn(first=True)
        count = self.share(batch)
        self.free -= count
        self._call()  # slots left over go to the next in line
        return count

    async def _turn(self, first: bool) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first:
            self._waiting.appendleft(woken)
        else:
            self._waiting.append(woken)
        try:
            await woken
        except asyncio.CancelledError:
            if woken.done() and not woken.cancelled():  # called, but leaving: call the next in line
                self._called -= 1
                self._call()
            elif woken in self._waiting:
                self._waiting.remove(woken)
            raise
        self._called -= 1

    def give(self, count: int) -> None:
        self.free += count
        self._call()

    def _call(self) -> None:
        while self._waiting and self.free > self._called:
            woken = self._waiting.popleft()
            if not woken.done():  # not cancelled (its loop stopping) meanwhile
                woken.set_result(None)
                self._called += 1


class PullLoop:
    def __init__(self, name: str, bind: Bind, handler: Handler, *, capacity: Capacity | None = None,
                 slots: int = settings.PULL_SLOTS, batch: int = settings.PULL_BATCH,
                 fetch_timeout: float = settings.PULL_FETCH_TIMEOUT,
                 heartbeat: float | None = None) -> None:
        self.name = name
        self._bind = bind
        self._handler = handler
        self.capacity = capacity or Capacity(slots)
        self.capacity.loops += 1
        self._batch = max(1, batch)
        self._fetch_timeout = fetch_timeout
        self._heartbeat = heartbeat
        self._psub: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[int, tuple[Msg, float]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def bind(self) -> None:
        """Create or bind the consumer (raises if it cannot be done; ``start`` calls it when needed). A
        subscription already bound is replaced only once the new one is, so a failed bind (during a
        consumer leader election, say) leaves the loop fetching as before."""
        new = await self._bind()
        old, self._psub = self._psub, new
        if old is not None:
            await _unsubscribe(old, self.name)

    def start(self) -> asyncio.Task[None]:
        """Run the loop in a task of its own (bind first with ``bind()`` to see binding errors)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self.run(), name=f"grctl-pull-{self.name}")
            if self._heartbeat:
                self._beat_task = asyncio.create_task(self._beat(self._heartbeat),
                                                      name=f"grctl-heartbeat-{self.name}")
        return self._loop_task

    async def run(self) -> None:
        """Fetch and dispatch until ``stop()``; then return (handlers may still be running)."""
        self.ready.set()
        failures = 0
        while not self._stopping.is_set():
            want = await self._acquire()
            if want is None:
                break
            try:
                if self._psub is None:  # never bound yet (its first bind failed): bind now
                    await self.bind()
                assert self._psub is not None
                msgs = await self._psub.fetch(want, timeout=self._fetch_timeout)
                failures = 0
            except TimeoutError:  # nats-py raises its own subclass or asyncio's: nothing to fetch
                msgs = []
            except asyncio.CancelledError:
                self.capacity.give(want)
                raise
            except Exception as exc:
                self.capacity.give(want)
                if self._stopping.is_set():
                    break
                failures += 1
                log.warning("fetching from %s failed (%s: %s); retrying", self.name, type(exc).__name__, exc)
                await self._unless_stopping(asyncio.sleep(settings.FETCH_BACKOFF.delay(failures)))
                # A consumer the server lost (a restart in memory, a deletion) is made again at once; a
                # consumer without a leader for a moment (an election) only needs patience: binding
                # again, a JetStream API call, would just wait for the same election.
                lost = isinstance(exc, nats.js.errors.NotFoundError)
                rebind = lost or failures % settings.PULL_REBIND_AFTER_FAILURES == 0
                if rebind and not self._stopping.is_set():
                    await self._rebind()
                continue
            self.capacity.give(want - len(msgs))
            metrics.fetched(self.name, msgs)
            if self._stopping.is_set():
                for msg in msgs:
                    await settle(msg, NAK)
                self.capacity.give(len(msgs))
                break
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg))
                self._tasks.add(task)

    async def _acquire(self) -> int | None:
        """This loop's slots for its next fetch, or None once it is stopping (holding none)."""
        acquiring = asyncio.ensure_future(self.capacity.acquire(self._batch))
        try:
            await self._unless_stopping(asyncio.shield(acquiring))
        finally:
            if not acquiring.done():
                await cancel(acquiring)
        if acquiring.cancelled():
            return None
        want = acquiring.result()
        if self._stopping.is_set():
            self.capacity.give(want)
            return None
        return want

    async def _rebind(self) -> None:
        try:
            await self.bind()
            log.info("bound consumer %s again", self.name)
        except Exception as exc:
            log.warning("binding consumer %s again failed: %s", self.name, exc)

    async def _handle(self, msg: Msg) -> None:
        key = id(msg)
        self._held[key] = (msg, time.monotonic())
        decision: Decision | None = None
        try:
            decision = await self._handler(msg)
        except asyncio.CancelledError:
            decision = NAK  # stopped before it finished: another process takes it at once
            raise
        except Exception:
            log.exception("handling a message of %s on %s failed", self.name, msg.subject)
            decision = nak(settings.PULL_HANDLER_ERROR_DELAY)
        finally:
            self._held.pop(key, None)
            if decision is not None:
                await settle(msg, decision)
            self._tasks.discard(asyncio.current_task())
            self.capacity.give(1)

    async def _beat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for msg, since in list(self._held.values()):
                if now - since >= interval:
                    try:
                        await msg.in_progress()
                    except Exception as exc:  # e.g. reconnecting: the next beat tries again
                        log.debug("in-progress ack of %s failed: %s", msg.subject, exc)

    async def _unless_stopping(self, aw: Awaitable[object]) -> None:
        waiter = asyncio.ensure_future(aw)
        if not await until_stopped(waiter, self._stopping):
            waiter.cancel()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop fetching and wait (up to ``timeout``, default the fetch timeout + 1 s) for the loop."""
        self._stopping.set()
        task = self._loop_task
        if task is None or task.done():
            return
        await asyncio.wait({task}, timeout=timeout or self._fetch_timeout + 1.0)
        await cancel(task)  # the loop's own end, or, past the timeout, its cancellation

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for running handlers; True when none is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return not self._tasks

    async def cancel_running(self) -> None:
        # once each: a handler's clean-up hands its message back
        await asyncio.gather(*(cancel(task, again_after=None) for task in list(self._tasks)))

    async def close(self) -> None:
        """Stop everything: the intake, the heartbeats and the subscription (not the handlers)."""
        await self.stop()
        if self._beat_task is not None:
            await cancel(self._beat_task)
            self._beat_task = None
        if self._psub is not None:
            psub, self._psub = self._psub, None
            await _unsubscribe(psub, self.name)


async def _unsubscribe(psub: JetStreamContext.PullSubscription, name: str) -> None:
    try:
        await psub.unsubscribe()
    except Exception as exc:  # the connection may be gone: the subscription goes with it
        log.debug("unsubscribing from %s failed: %s", name, exc)
