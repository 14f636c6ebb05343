"""A durable pull-consumer loop: fetch in batches, hand each message to a handler task, never end
silently. Errors are logged and the loop carries on (re-binding the subscription when needed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from grctl.nats import subjects

log = logging.getLogger(__name__)

Handler = Callable[[Msg], Awaitable[None]]


class PullConsumer:
    """Runs ``handler`` for each message of a durable pull consumer, at most ``slots`` at a time.

    The handler owns the ack decision. ``stop_fetching()`` closes the intake; ``wait_idle()`` waits for
    the handlers already running.
    """

    def __init__(
        self,
        js: JetStreamContext,
        durable: str,
        handler: Handler,
        *,
        config: ConsumerConfig | None = None,
        slots: int = 64,
        batch: int = 64,
        fetch_timeout: float = 1.0,
        stream: str = subjects.STREAM,
    ) -> None:
        self._js = js
        self.durable = durable
        self._handler = handler
        self._config = config
        self._slots = max(1, slots)
        self._batch = max(1, batch)
        self._fetch_timeout = fetch_timeout
        self._stream = stream
        self._tasks: set[asyncio.Task[None]] = set()
        self._free = asyncio.Event()
        self._free.set()
        self._stopping = asyncio.Event()
        self._psub: JetStreamContext.PullSubscription | None = None
        self.ready = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def ensure_consumer(self) -> None:
        """Create or update the durable consumer (when a config was given) and bind to it."""
        if self._config is not None:
            self._config.durable_name = self.durable
            await self._js.add_consumer(self._stream, self._config)
        self._psub = await self._js.pull_subscribe_bind(self.durable, stream=self._stream)

    async def run(self) -> None:
        """Fetch and dispatch until ``stop_fetching()``; then return (handlers may still be running)."""
        if self._psub is None:
            await self.ensure_consumer()
        self.ready.set()
        failures = 0
        while not self._stopping.is_set():
            room = self._slots - len(self._tasks)
            if room <= 0:
                self._free.clear()
                await self._wait_either(self._free.wait())
                continue
            try:
                msgs = await self._psub.fetch(min(room, self._batch), timeout=self._fetch_timeout)  # type: ignore[union-attr]
                failures = 0
            except TimeoutError:  # nats-py raises its own subclass or asyncio's: nothing to fetch
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble, consumer deleted...
                failures += 1
                log.warning("fetch from %s failed (%r); retrying", self.durable, exc)
                await self._wait_either(asyncio.sleep(min(0.2 * failures, 5.0)))
                if failures % 5 == 0:
                    await self._rebind()
                continue
            for msg in msgs:
                task = asyncio.create_task(self._run_handler(msg))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    async def _rebind(self) -> None:
        try:
            await self.ensure_consumer()
        except Exception as exc:
            log.warning("re-binding consumer %s failed: %s", self.durable, exc)

    async def _wait_either(self, aw: Awaitable[object]) -> None:
        waiter = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, stopper):
                if not t.done():
                    t.cancel()

    async def _run_handler(self, msg: Msg) -> None:
        try:
            await self._handler(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler for %s failed on %s", self.durable, msg.subject)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._free.set()

    def stop_fetching(self) -> None:
        self._stopping.set()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for running handlers; True when all finished within ``timeout``."""
        if not self._tasks:
            return True
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending

    async def cancel_running(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        self.stop_fetching()
        if self._psub is not None:
            try:
                await self._psub.unsubscribe()
            except Exception:
                pass
            self._psub = None
