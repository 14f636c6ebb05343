"""Watching a run for its outcome: a deliver-last push consumer on the run's history subject resolves
a future on the first terminal event (PROTOCOL.md §5.15)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from grctl.models.errors import (
    WorkflowCancelledError,
    WorkflowError,
    WorkflowTerminatedError,
)
from grctl.models.history import HistoryEvent, HistoryKind, decode_history
from grctl.nats import subjects
from grctl.nats.connection import Connection

log = logging.getLogger("grctl.client")

INACTIVE_THRESHOLD = 5.0


def outcome_of(event: HistoryEvent) -> tuple[bool, Any]:
    """(is-terminal, result or exception) of a history event."""
    msg = event.msg
    if event.kind == HistoryKind.run_completed:
        return True, msg.result
    if event.kind == HistoryKind.run_failed:
        err = msg.error
        return True, WorkflowError(f"{err.type or 'UnknownError'}: {err.message or 'No message'}")
    if event.kind == HistoryKind.run_cancelled:
        return True, WorkflowCancelledError("Workflow cancelled")
    if event.kind == HistoryKind.run_terminated:
        return True, WorkflowTerminatedError("Workflow terminated")
    if event.kind == HistoryKind.run_timeout:
        return True, TimeoutError(f"Workflow timed out after {msg.duration_ms} ms")
    return False, None


def settle(future: asyncio.Future[Any], event: HistoryEvent) -> bool:
    """Resolve ``future`` from a terminal event; False for any other event."""
    terminal, value = outcome_of(event)
    if not terminal:
        return False
    if not future.done():
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)
    return True


class RunWatcher:
    """Owns ``future`` (the run's outcome) and the subscription that feeds it."""

    def __init__(self, connection: Connection, wf_id: str, run_id: str) -> None:
        self._connection = connection
        self.wf_id = wf_id
        self.run_id = run_id
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # An outcome nobody awaits must not be reported as "exception never retrieved".
        self.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.future.add_done_callback(self._on_done)
        self._sub: Any = None
        self._consumer: str | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def watching(self) -> bool:
        return self._sub is not None

    async def watch(self) -> None:
        """Subscribe (deliver last: the latest event already stored, then every new one).

        The consumer is ephemeral, in memory and without acks; it is deleted as soon as the outcome is
        known, so a busy client does not leave hundreds of idle consumers for the server to match.
        After a reconnection it is made again (a restarted server has lost it).
        """
        if self._sub is not None or self.future.done():
            return
        await self._subscribe()
        self._connection.add_reconnect_listener(self._rewatch)

    async def _subscribe(self) -> None:
        nc = self._connection.nc
        inbox = nc.new_inbox()
        self._sub = await nc.subscribe(inbox, cb=self._on_msg)
        config = ConsumerConfig(
            deliver_subject=inbox, filter_subject=subjects.history(self.wf_id, self.run_id),
            deliver_policy=DeliverPolicy.LAST, ack_policy=AckPolicy.NONE, mem_storage=True,
            inactive_threshold=INACTIVE_THRESHOLD, num_replicas=1,
        )
        try:
            info = await self._connection.js.add_consumer(subjects.STREAM, config)
        except BaseException:
            await self._unsubscribe()
            raise
        self._consumer = info.name

    async def _rewatch(self) -> None:
        """A new consumer after a reconnection; deliver last also brings an outcome stored meanwhile."""
        for attempt in range(60):
            if self.future.done() or self._connection.is_closed:
                return
            await self._unsubscribe()
            try:
                await self._subscribe()
                return
            except Exception as exc:  # JetStream may need a moment after a server restart
                log.debug("re-watching run %s failed (%s); retrying", self.run_id, exc)
                await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        log.warning("gave up watching run %s after a reconnection", self.run_id)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            event = decode_history(msg.data)
        except Exception as exc:
            log.debug("skipping an undecodable history event of run %s: %s", self.run_id, exc)
            return
        settle(self.future, event)

    def _on_done(self, _: asyncio.Future[Any]) -> None:
        if self._sub is not None and self._closing is None:
            self._closing = asyncio.ensure_future(self.close())

    async def close(self) -> None:
        self._connection.remove_reconnect_listener(self._rewatch)
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribing from run %s failed", self.run_id, exc_info=True)
        if consumer is not None and not self._connection.is_closed:
            try:
                await self._connection.nc.request(
                    f"$JS.API.CONSUMER.DELETE.{subjects.STREAM}.{consumer}", b"", timeout=2.0)
            except Exception:  # it expires on its own after the inactive threshold
                log.debug("deleting the history consumer of run %s failed", self.run_id, exc_info=True)

    async def discard(self) -> None:
        """Stop watching and drop the future (used for child handles at the end of a step)."""
        await self.close()
        if not self.future.done():
            self.future.cancel()
