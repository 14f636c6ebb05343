"""The background-task consumer (PROTOCOL.md §4.9): timer deletion, residue purge, parent notification
and asking a worker to stop a run. At most 5 deliveries, then the task is dropped (logged)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from ulid import ULID

from grctl.engine.manager import FETCH_TIMEOUT, consumer_config
from grctl.models.command import Command, CommandKind, WorkerTerminateRunCmd, encode_command
from grctl.models.common import RunInfo, utcnow
from grctl.models.directive import Directive, DirectiveKind, Event, encode_directive
from grctl.models.records import (
    BG_PAYLOAD_TYPES,
    BackgroundTask,
    DeleteInboxEvent,
    DeleteTimer,
    NotifyParentComplete,
    PurgeRunResidue,
    WorkerTerminateRun,
)
from grctl.nats import subjects
from grctl.nats.jetstream import H_MSG_ID, delete_msg, get_last, publish, purge
from grctl.nats.pull import PullConsumer

log = logging.getLogger(__name__)

MAX_BG_DELIVERIES = 5
BG_RETRY_DELAY = 0.5

_task_decoder = msgspec.msgpack.Decoder(BackgroundTask)


class RetryLater(Exception):
    """The task cannot be done yet (e.g. the parent run is not visible yet)."""


class BackgroundTasks:
    def __init__(self, nc: NATSClient, js: JetStreamContext, sender_id: str,
                 worker_cmd_timeout: float = 5.0) -> None:
        self._nc = nc
        self._sender_id = sender_id
        self._worker_cmd_timeout = worker_cmd_timeout
        self.consumer = PullConsumer(js, subjects.BG_TASK_CONSUMER, self._handle,
                                     config=consumer_config(subjects.BG_TASK), slots=128, batch=64,
                                     fetch_timeout=FETCH_TIMEOUT)

    async def _handle(self, msg: Msg) -> None:
        delivered = msg.metadata.num_delivered or 1
        try:
            task = _task_decoder.decode(msg.data)
            payload_type = BG_PAYLOAD_TYPES.get(task.kind)
            if payload_type is None:
                raise ValueError(f"unknown background task kind {task.kind!r}")
            payload = msgspec.msgpack.decode(task.payload, type=payload_type)
        except Exception as exc:
            log.warning("dropping undecodable background task: %s", exc)
            await msg.ack()
            return
        try:
            await self.run(task.deduplication_id, payload, msg.metadata.sequence.stream)
        except Exception as exc:
            if delivered >= MAX_BG_DELIVERIES:
                log.error("dropping background task %s after %d attempts: %s", task.deduplication_id,
                          delivered, exc)
                await msg.ack()
            else:
                log.warning("background task %s failed (attempt %d): %s", task.deduplication_id, delivered,
                            exc)
                await msg.nak(delay=BG_RETRY_DELAY)
            return
        await msg.ack()

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

    async def _purge_residue(self, p: PurgeRunResidue, own_seq: int) -> None:
        if not p.run_id:  # a task written by the Go server: everything of the workflow id
            for pattern in (f"grctl_directive.*.{p.wf_id}.>", f"grctl_timers.{p.wf_id}.>",
                            subjects.inbox(p.wf_id), f"grctl_worker_task.*.{p.wf_id}.>"):
                await purge(self._nc, pattern)
            return
        await purge(self._nc, f"grctl_directive.*.{p.wf_id}.{p.run_id}")
        await purge(self._nc, f"grctl_worker_task.*.{p.wf_id}.{p.run_id}")
        for timer_id in p.timer_ids:
            kind = timer_id.split(".", 1)[0]
            await purge(self._nc, subjects.timer(p.wf_id, kind, timer_id))
        await purge(self._nc, subjects.inbox(p.wf_id), up_to_seq=p.inbox_up_to_seq or own_seq)

    async def _notify_parent(self, dedup_id: str, p: NotifyParentComplete) -> None:
        if p.parent_run_id:
            stored = await get_last(self._nc, f"grctl_run.*.{p.parent_wf_id}.{p.parent_run_id}.info")
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
        cmd = Command(id=str(ULID()), kind=CommandKind.worker_terminate_run, timestamp=utcnow(),
                      msg=WorkerTerminateRunCmd(run_id=p.run_id), sender_id=self._sender_id)
        try:
            # Never decode the reply: the public SDK's reply is not valid msgpack (PROTOCOL §4.10).
            await self._nc.request(subjects.worker_cmd(p.worker_id), encode_command(cmd),
                                   timeout=self._worker_cmd_timeout)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            log.info("worker %s did not answer terminate_run for %s (gone?)", p.worker_id, p.run_id)
