"""Group commit: the transitions of many runs that are ready at the same moment go out as ONE atomic
batch, because on a file stream each batch costs a few fsyncs whatever its size
(tests/bench/bench_engine_commit.py measures the difference).

Callers ``submit`` the messages of one transition and await the outcome of *their* commit. A flusher
takes everything queued (up to ``max_msgs`` messages per batch, ``max_inflight`` batches at a time) and
commits it. When a combined batch is refused (one run's compare-and-swap failed, one message id was a
duplicate...), nothing of it was stored, so each member is committed again on its own and gets its own
answer. With ``enabled=False`` every submission is its own batch (for comparison).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from grctl import settings
from grctl.engine.storage import StorageCondition
from grctl.lifecycle import cancel
from grctl.nats.connection import Connection
from grctl.nats.jetstream import OutMsg, publish_batch, storage_full
from grctl.ops import metrics

log = logging.getLogger(__name__)



@dataclass(slots=True)
class _Pending:
    msgs: list[OutMsg]
    future: asyncio.Future[dict]


class GroupCommitter:
    def __init__(self, connection: Connection, *, enabled: bool = True,
                 max_msgs: int = settings.MAX_BATCH_MSGS, max_inflight: int = 2,
                 timeout: float = settings.COMMIT_TIMEOUT) -> None:
        self._connection = connection
        self.enabled = enabled
        self._max_msgs = max_msgs
        self._max_inflight = max(1, max_inflight)
        self._timeout = timeout
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._inflight = 0
        self._gate = asyncio.Semaphore(settings.MAX_CONCURRENT_BATCHES)
        self._flushes: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.storage = StorageCondition()  # every commit goes through here: the one place that sees it
        # Figures for logs and benchmarks.
        self.batches = 0
        self.transitions = 0
        self.split_batches = 0

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="grctl-group-commit")

    async def submit(self, msgs: list[OutMsg]) -> dict:
        """Commit ``msgs`` atomically (possibly together with other runs' messages); returns the publish
        ack, raises ``JetStreamError`` (or a transport error) when this transition was not stored."""
        if not msgs:
            raise ValueError("nothing to commit")
        if not self.enabled or self._loop_task is None or len(msgs) >= self._max_msgs:
            self.transitions += 1
            return await self._publish(msgs)
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(msgs, future))
        self._wakeup.set()
        return await future

    async def _publish(self, msgs: list[OutMsg]) -> dict:
        async with self._gate:
            self.batches += 1
            # A batch in flight when the connection drops is lost (or stored, its reply lost): fail it at
            # once rather than after its timeout, which would stall every commit behind it. Its callers
            # commit again, and the CAS and message ids make a repeat harmless.
            started = time.perf_counter()
            try:
                ack = await self._connection.interruptible(
                    publish_batch(self._connection.nc, msgs, timeout=self._timeout))
            except Exception as exc:
                if storage_full(exc):
                    self.storage.refused(exc)
                raise
            self.storage.accepted()
            metrics.batch_committed(len(msgs), time.perf_counter() - started)
            return ack

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self._inflight >= self._max_inflight:
                    self._slot_free.clear()
                    await self._slot_free.wait()
                    continue
                group = self._take()
                if not group:
                    continue
                self._inflight += 1
                task = asyncio.create_task(self._flush(group))
                self._flushes.add(task)
                task.add_done_callback(self._flushes.discard)

    def _take(self) -> list[_Pending]:
        group: list[_Pending] = []
        count = 0
        while self._queue and (not group or count + len(self._queue[0].msgs) <= self._max_msgs):
            pending = self._queue.popleft()
            if pending.future.done():  # the caller gave up (cancelled)
                continue
            group.append(pending)
            count += len(pending.msgs)
        return group

    async def _flush(self, group: list[_Pending]) -> None:
        try:
            self.transitions += len(group)
            if len(group) == 1:
                await self._commit_alone(group[0])
                return
            msgs = [m for p in group for m in p.msgs]
            try:
                ack = await self._publish(msgs)
            except Exception as exc:
                self.split_batches += 1
                log.debug("combined batch of %d transitions refused (%s); committing each alone",
                          len(group), exc)
                await asyncio.gather(*(self._commit_alone(p) for p in group))
                return
            for p in group:
                if not p.future.done():
                    p.future.set_result(ack)
        finally:
            self._inflight -= 1
            self._slot_free.set()

    async def _commit_alone(self, pending: _Pending) -> None:
        try:
            ack = await self._publish(pending.msgs)
        except Exception as exc:
            if not pending.future.done():
                pending.future.set_exception(exc)
        else:
            if not pending.future.done():
                pending.future.set_result(ack)

    async def close(self, timeout: float = settings.COMPONENT_STOP_TIMEOUT) -> None:
        """Let queued and in-flight commits finish (within ``timeout``), then stop the flusher."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._queue or self._flushes) and self._loop_task is not None and loop.time() < deadline:
            self._wakeup.set()
            await asyncio.sleep(0)  # let the flusher take what is queued
            if self._flushes:
                await asyncio.wait(set(self._flushes), timeout=max(0.01, deadline - loop.time()))
        if self._loop_task is not None:
            await cancel(self._loop_task)
            self._loop_task = None
        for p in self._queue:
            if not p.future.done():
                p.future.set_exception(ConnectionError("engine stopping"))
        self._queue.clear()
