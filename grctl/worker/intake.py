"""Pulling worker tasks: one fetch loop per workflow type, all sharing the process's step capacity.

A loop reserves free slots before it fetches, so the process never holds more tasks than it can run.
Each message is handed to the handler in its own asyncio task; the handler owns the ack decision.
``close()`` stops fetching (messages that arrive after that are NAKed so another worker takes them at
once); ``wait_idle()`` waits for the handlers already running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext

log = logging.getLogger("grctl.worker")

Handler = Callable[[Msg], Awaitable[None]]


class Intake:
    def __init__(self, handler: Handler, capacity: int, batch: int = 32, fetch_timeout: float = 1.0) -> None:
        self._handler = handler
        self._capacity = max(1, capacity)
        self._free = self._capacity
        self._batch = max(1, batch)
        self._fetch_timeout = fetch_timeout
        self._slot_freed = asyncio.Event()
        self._closing = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._handlers)

    def start(self, name: str, psub: JetStreamContext.PullSubscription) -> None:
        self._loops.append(asyncio.create_task(self._loop(name, psub), name=f"grctl-intake-{name}"))

    async def _loop(self, name: str, psub: JetStreamContext.PullSubscription) -> None:
        failures = 0
        while not self._closing.is_set():
            if self._free <= 0:
                self._slot_freed.clear()
                await self._until_closed(self._slot_freed.wait())
                continue
            share = max(1, self._free // max(1, len(self._loops)))
            want = min(self._batch, share)
            self._free -= want
            try:
                msgs = await psub.fetch(want, timeout=self._fetch_timeout)
                failures = 0
            except TimeoutError:  # nats-py raises its own subclass or asyncio's: nothing to fetch
                msgs = []
            except asyncio.CancelledError:
                self._free += want
                raise
            except Exception as exc:
                self._free += want
                if self._closing.is_set():
                    break
                failures += 1
                log.warning("fetching tasks of %s failed (%s: %s); retrying", name, type(exc).__name__, exc)
                await self._until_closed(asyncio.sleep(min(0.2 * failures, 5.0)))
                continue
            self._free += want - len(msgs)
            if self._closing.is_set():
                for msg in msgs:
                    await _nak(msg)
                self._free += len(msgs)
                break
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg))
                self._handlers.add(task)
                task.add_done_callback(self._done)

    async def _handle(self, msg: Msg) -> None:
        try:
            await self._handler(msg)
        except Exception:
            log.exception("handling a task on %s failed", msg.subject)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._free += 1
        self._slot_freed.set()

    async def _until_closed(self, aw: Awaitable[object]) -> None:
        waiter = asyncio.ensure_future(aw)
        closer = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, closer):
                t.cancel()

    async def close(self, timeout: float | None = None) -> None:
        """Stop fetching and wait (up to ``timeout``, default fetch timeout + 1 s) for the loops to end."""
        self._closing.set()
        if not self._loops:
            return
        _, pending = await asyncio.wait(self._loops, timeout=timeout or self._fetch_timeout + 1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for the running handlers; True when none is left."""
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=timeout)
        return not self._handlers


async def _nak(msg: Msg) -> None:
    try:
        await msg.nak()
    except Exception:
        log.debug("NAK failed", exc_info=True)
