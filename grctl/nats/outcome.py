"""Waiting for a run's outcome: a future resolved by the run's terminal history event.

With our engine (its replies carry the ``Grctl-Outcome: notify`` header) the watcher subscribes to the
core NATS subject ``grctl_outcome.{wf_id}.{run_id}``, on which the engine announces the end of the run:
no JetStream API call and no consumer per awaited run, so any number of runs can be awaited at once.
It subscribes before the run is started (or, for a run that exists, before reading its stored last
event once), so no outcome can slip between the check and the subscription; after a reconnection it
reads the stored last event again, in case the announcement was sent while it was away.

The public server announces nothing: then the watcher falls back to an ephemeral JetStream consumer
that delivers the run's last history event and every new one (``watch_history``), made again after a
reconnection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from grctl import settings
from grctl.models.common import RunInfo
from grctl.models.errors import (
    WorkflowCancelledError,
    WorkflowError,
    WorkflowTerminatedError,
)
from grctl.models.history import HistoryEvent, HistoryKind, decode_history
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.direct import get_last
from grctl.nats.history import last_event, read_history
from grctl.nats.retry import is_transient

log = logging.getLogger("grctl.client")

_info_decoder = msgspec.msgpack.Decoder(RunInfo)


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

    def __init__(self, connection: Connection, wf_id: str, run_id: str, wf_type: str = "") -> None:
        self._connection = connection
        self.wf_id = wf_id
        self.run_id = run_id
        self.wf_type = wf_type
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # An outcome nobody awaits must not be reported as "exception never retrieved".
        self.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.future.add_done_callback(self._on_done)
        self._sub: Subscription | None = None
        self._history_sub: Subscription | None = None  # the fallback for engines that announce nothing
        self._consumer: str | None = None
        self._closing: asyncio.Task[None] | None = None
        self._listening = False

    @property
    def watching(self) -> bool:
        return self._sub is not None or self._history_sub is not None

    async def watch(self, check_stored: bool = True) -> None:
        """Subscribe to the run's outcome announcements; then, unless the run is only about to be
        started (``check_stored=False``), read its stored last event once."""
        if self.future.done():
            return
        if self._sub is None:
            self._sub = await self._connection.nc.subscribe(subjects.outcome(self.wf_id, self.run_id),
                                                            cb=self._on_msg)
        if not self._listening:
            self._listening = True
            self._connection.add_reconnect_listener(self._recheck)
        if check_stored:
            await self.check_stored()

    async def check_stored(self) -> None:
        """Settle the future from the run's stored outcome, if it has ended.

        The terminal event is normally the last one; but a worker stopped by a terminate may write a
        late ``task.cancelled`` after it. So when the last event is not terminal, the run's own status
        decides whether to look further back (two exact reads for a run that is still going)."""
        if self.future.done():
            return
        nc = self._connection.nc
        event = await last_event(nc, self.wf_id, self.run_id)
        if event is None or settle(self.future, event) or not event.operation_id:
            return  # no history, ended, or its last event is the engine's: still going
        if self.wf_type:
            stored = await get_last(nc, subjects.run_info(self.wf_type, self.wf_id, self.run_id))
            if stored is None or not _info_decoder.decode(stored.data).is_terminal:
                return
        for earlier in reversed(await read_history(nc, self.wf_id, self.run_id)):
            if settle(self.future, earlier):
                return

    async def _recheck(self) -> None:
        """After a reconnection: an announcement may have been missed; read the stored outcome (or
        make the history consumer again, which a restarted server has lost)."""
        for attempt in range(1, settings.OUTCOME_RECHECK_ATTEMPTS + 1):
            if self.future.done() or self._connection.is_closed:
                return
            try:
                if self._history_sub is not None:
                    await self._unsubscribe_history()
                    await self.watch_history()
                else:
                    await self.check_stored()
                return
            except Exception as exc:  # JetStream may need a moment after a server restart
                if not is_transient(exc) and not isinstance(exc, OSError):
                    log.warning("checking run %s after a reconnection failed: %s", self.run_id, exc)
                await asyncio.sleep(settings.TRANSPORT_BACKOFF.delay(attempt))
        log.warning("gave up checking run %s after a reconnection", self.run_id)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            event = decode_history(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:  # a kind we do not know
            log.debug("skipping an undecodable history event of run %s: %s", self.run_id, exc)
            return
        settle(self.future, event)

    # --- the fallback: a history consumer --------------------------------------------------------

    async def watch_history(self) -> None:
        """Watch the run's history with an ephemeral consumer (deliver last: the latest event already
        stored, then every new one), for engines that do not announce outcomes."""
        if self.future.done() or self._history_sub is not None:
            return
        nc = self._connection.nc
        inbox = nc.new_inbox()
        self._history_sub = await nc.subscribe(inbox, cb=self._on_msg)
        config = ConsumerConfig(
            deliver_subject=inbox, filter_subject=subjects.history(self.wf_id, self.run_id),
            deliver_policy=DeliverPolicy.LAST, ack_policy=AckPolicy.NONE, mem_storage=True,
            inactive_threshold=settings.OUTCOME_INACTIVE_THRESHOLD, num_replicas=1,
        )
        try:
            info = await self._connection.js.add_consumer(subjects.STREAM, config)
        except BaseException:
            await self._unsubscribe_history()
            raise
        self._consumer = info.name
        if not self._listening:
            self._listening = True
            self._connection.add_reconnect_listener(self._recheck)

    async def _unsubscribe_history(self) -> None:
        sub, self._history_sub = self._history_sub, None
        consumer, self._consumer = self._consumer, None
        await self._unsubscribe(sub)
        if consumer is not None and not self._connection.is_closed:
            try:
                await self._connection.js.delete_consumer(subjects.STREAM, consumer)
            except Exception:  # it expires on its own after the inactive threshold
                log.debug("deleting the history consumer of run %s failed", self.run_id, exc_info=True)

    # --- closing ---------------------------------------------------------------------------------

    def _on_done(self, _: asyncio.Future[Any]) -> None:
        if self.watching and self._closing is None:
            self._closing = asyncio.ensure_future(self.close())

    async def close(self) -> None:
        """Stop listening (the future stays as it is)."""
        if self._listening:
            self._listening = False
            self._connection.remove_reconnect_listener(self._recheck)
        sub, self._sub = self._sub, None
        await self._unsubscribe(sub)
        await self._unsubscribe_history()

    async def _unsubscribe(self, sub: Subscription | None) -> None:
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may be closing: the subscription goes with it
                log.debug("unsubscribing from run %s failed", self.run_id, exc_info=True)

    async def discard(self) -> None:
        """Stop watching and drop the future (used for child handles at the end of a step)."""
        await self.close()
        if not self.future.done():
            self.future.cancel()
