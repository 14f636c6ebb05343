"""The background-task consumer: timer deletion, the inbox purge of a finished run, parent notification,
asking a worker to stop a run, and (ours) removing a finished run once its retention has passed.

A task that fails is retried with growing pauses for about ten minutes (a NATS outage or an election
delays it; it does not lose it), then dropped with an error in the log.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from ulid import ULID

from grctl import settings
from grctl.engine.manager import engine_consumer
from grctl.models.command import Command, CommandKind, WorkerTerminateRunCmd, encode_command
from grctl.models.common import RunInfo, utcnow
from grctl.models.directive import Directive, DirectiveKind, Event, encode_directive
from grctl.models.records import (
    BG_PAYLOAD_TYPES,
    BackgroundTask,
    DeleteInboxEvent,
    DeleteTimer,
    LatestRun,
    NotifyParentComplete,
    PurgeRun,
    PurgeRunResidue,
    WorkerTerminateRun,
)
from grctl.nats import subjects
from grctl.nats.direct import get_last
from grctl.nats.jetstream import H_MSG_ID, delete_msg, publish, purge
from grctl.nats.pull import ACK, Decision, nak
from grctl.ops import metrics

log = logging.getLogger(__name__)


_task_decoder = msgspec.msgpack.Decoder(BackgroundTask)
_latest_decoder = msgspec.msgpack.Decoder(LatestRun)


class RetryLater(Exception):
    """The task cannot be done yet (e.g. the parent run is not visible yet)."""


class BackgroundTasks:
    def __init__(self, nc: NATSClient, js: JetStreamContext, sender_id: str,
                 worker_cmd_timeout: float = settings.WORKER_CMD_TIMEOUT) -> None:
        self._nc = nc
        self._sender_id = sender_id
        self._worker_cmd_timeout = worker_cmd_timeout
        self.consumer = engine_consumer(js, subjects.BG_TASK_CONSUMER, subjects.BG_TASK, self._handle,
                                        slots=128, batch=64)

    async def _handle(self, msg: Msg) -> Decision:
        delivered = msg.metadata.num_delivered or 1
        try:
            task = _task_decoder.decode(msg.data)
            payload_type = BG_PAYLOAD_TYPES.get(task.kind)
            if payload_type is None:
                raise ValueError(f"unknown background task kind {task.kind!r}")
            payload = msgspec.msgpack.decode(task.payload, type=payload_type)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            log.warning("dropping undecodable background task: %s", exc)
            return ACK
        try:
            await self.run(task.deduplication_id, payload, msg.metadata.sequence.stream)
        except Exception as exc:
            if delivered >= settings.BG_DELIVERIES:
                log.error("dropping background task %s after %d attempts: %s", task.deduplication_id,
                          delivered, exc)
                metrics.background_task(task.kind, "dropped")
                return ACK
            log.warning("background task %s failed (attempt %d): %s", task.deduplication_id, delivered, exc)
            metrics.background_task(task.kind, "retry")
            return nak(settings.BG_BACKOFF.delay(delivered))
        metrics.background_task(task.kind, "ok")
        return ACK

    async def run(self, dedup_id: str, payload: Any, own_seq: int) -> None:
        """Do one task; ``own_seq`` is the task message's stream sequence (it was committed with the
        run's terminal transition, so everything of that run in the inbox comes before it)."""
        if isinstance(payload, DeleteTimer):
            await purge(self._nc, subjects.timer(payload.wf_id, payload.kind, payload.timer_id))
        elif isinstance(payload, PurgeRunResidue):
            await self._purge_residue(payload, own_seq)
        elif isinstance(payload, NotifyParentComplete):
            await self._notify_parent(dedup_id, payload)
        elif isinstance(payload, WorkerTerminateRun):
            await self._terminate_on_worker(payload)
        elif isinstance(payload, DeleteInboxEvent):
            await delete_msg(self._nc, payload.seq_id)
        elif isinstance(payload, PurgeRun):
            await self._purge_run(payload)

    async def _purge_residue(self, p: PurgeRunResidue, own_seq: int) -> None:
        if not p.run_id:  # a task written by the public server: everything of the workflow id
            for pattern in subjects.workflow_residue(p.wf_id):
                await purge(self._nc, pattern)
            return
        # Ours: the run's directives and tasks are swept with everything acknowledged (engine.sweep);
        # timers named by tasks written before that are purged here.
        for timer_id in p.timer_ids:
            kind = timer_id.split(".", 1)[0]
            await purge(self._nc, subjects.timer(p.wf_id, kind, timer_id))
        await purge(self._nc, subjects.inbox(p.wf_id), up_to_seq=p.inbox_up_to_seq or own_seq)

    async def _purge_run(self, p: PurgeRun) -> None:
        """Remove every record of a finished run, and the workflow id's latest-run pointer if it still
        points at this run (purged up to its own sequence, so a newer start is never touched)."""
        pointer = await get_last(self._nc, subjects.latest(p.wf_id))
        for subject in subjects.run_records(p.wf_type, p.wf_id, p.run_id):
            await purge(self._nc, subject)
        if pointer is not None and _latest_decoder.decode(pointer.data).run_id == p.run_id:
            await purge(self._nc, subjects.latest(p.wf_id), up_to_seq=pointer.seq + 1)
        log.debug("removed run %s/%s (retention)", p.wf_id, p.run_id)

    async def _notify_parent(self, dedup_id: str, p: NotifyParentComplete) -> None:
        if p.parent_run_id and p.parent_wf_type:
            stored = await get_last(self._nc, subjects.run_info(p.parent_wf_type, p.parent_wf_id,
                                                                p.parent_run_id))
        elif p.parent_run_id:  # written by an earlier version, without the parent's type
            stored = await get_last(self._nc, subjects.any_run_info(p.parent_wf_id, p.parent_run_id))
        else:
            stored = await get_last(self._nc, subjects.latest_run_info(p.parent_wf_id))
        if stored is None:
            raise RetryLater(f"parent run {p.parent_wf_id}/{p.parent_run_id} not found")
        parent = msgspec.msgpack.decode(stored.data, type=RunInfo)
        if parent.is_terminal:
            log.info("parent %s/%s already finished; child %s outcome dropped", parent.wf_id, parent.id,
                     p.child_wf_id)
            return
        outcome = {"status": p.status, "result": p.result, "error": p.error}
        d = Directive(id=f"notify.{dedup_id}", timestamp=utcnow(),
                      kind=DirectiveKind.event, run_info=parent,
                      msg=Event(event_name=p.step_name, payload=outcome, timeout_ms=0))
        subject = subjects.directive(parent.wf_type, parent.wf_id, parent.id)
        await publish(self._nc, subject, encode_directive(d), {H_MSG_ID: d.id})

    async def _terminate_on_worker(self, p: WorkerTerminateRun) -> None:
        bad = subjects.invalid_id_reason(p.worker_id)
        if bad:  # reported by a worker; never let it make a subject the server would refuse
            log.warning("not asking worker %r to stop run %s: its id %s", p.worker_id[:64], p.run_id, bad)
            return
        cmd = Command(id=str(ULID()), kind=CommandKind.worker_terminate_run, timestamp=utcnow(),
                      msg=WorkerTerminateRunCmd(run_id=p.run_id), sender_id=self._sender_id)
        try:
            # Never decode the reply: the public SDK's reply is not valid msgpack.
            await self._nc.request(subjects.worker_cmd(p.worker_id), encode_command(cmd),
                                   timeout=self._worker_cmd_timeout)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            log.info("worker %s did not answer terminate_run for %s (gone?)", p.worker_id, p.run_id)
