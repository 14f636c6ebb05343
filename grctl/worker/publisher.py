"""What a worker writes to the stream: its history events and its directives (step_picked_up,
step_result). Messages published on one connection are stored in the order they were sent.

Every write carries a message id derived from what it records (the run, the dispatch, the operation,
the event kind), so a write retried after a lost acknowledgement — or repeated by a re-executed step —
is stored once (within the stream's duplicate window). Transport trouble is retried for the time the
caller allows; then ``StepInterrupted`` says the step cannot report now and must be delivered again.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from nats.js.api import PubAck

from grctl import settings
from grctl.models.common import RunInfo, utcnow
from grctl.models.directive import Directive, encode_directive
from grctl.models.history import HistoryEvent, HistoryKind, encode_history
from grctl.nats import jetstream, subjects
from grctl.nats.connection import Connection
from grctl.nats.jetstream import H_MSG_ID
from grctl.nats.retry import is_transient, retrying
from grctl.worker.errors import StepInterrupted


def history_msg_id(run: RunInfo, kind: HistoryKind, operation_id: str, attempt: int = 0) -> str:
    """The message id of a worker's history event: one per dispatch, operation and kind (and attempt,
    for the failed attempts of a task)."""
    suffix = f".{attempt}" if attempt else ""
    return f"h.{run.id}.{run.history_seq_id}.{operation_id}.{kind}{suffix}"


class Publisher:
    def __init__(self, connection: Connection, worker_id: str,
                 timeout: float = settings.PUBLISH_TIMEOUT) -> None:
        self._connection = connection
        self.worker_id = worker_id
        self._timeout = timeout

    async def _publish(self, subject: str, data: bytes, msg_id: str, budget: float, what: str,
                       headers: dict[str, str] | None = None) -> None:
        nc = self._connection.nc
        all_headers = {H_MSG_ID: msg_id, **(headers or {})}

        async def once() -> None:
            await self._connection.interruptible(
                jetstream.publish(nc, subject, data, all_headers, timeout=self._timeout))

        try:
            await retrying(once, budget, what=what)
        except Exception as exc:
            if is_transient(exc):
                raise StepInterrupted(f"could not record {what}: {type(exc).__name__}: {exc}") from exc
            raise

    async def history(
        self, run: RunInfo, kind: HistoryKind, msg: object, operation_id: str,
        timestamp: datetime | None = None, attempt: int = 0, budget: float = settings.PUBLISH_BUDGET,
        headers: dict[str, str] | None = None,
    ) -> None:
        event = HistoryEvent(
            wf_id=run.wf_id, run_id=run.id, worker_id=self.worker_id, timestamp=timestamp or utcnow(),
            kind=kind, msg=msg, operation_id=operation_id,
        )
        await self._publish(subjects.history(run.wf_id, run.id), encode_history(event),
                            history_msg_id(run, kind, operation_id, attempt), budget,
                            f"{kind} of {operation_id}", headers)

    async def claim(self, subject: str, body: bytes, msg_id: str, check: dict[str, str]) -> int:
        """Write a step's claim (``claim.py``), once, and return its stream sequence; the server's refusal
        of ``check`` (``JetStreamError``) and transport errors are the caller's."""
        ack = await self._connection.interruptible(jetstream.publish(
            self._connection.nc, subject, body, {H_MSG_ID: msg_id, **check}, timeout=self._timeout))
        return int(ack["seq"])

    async def directive(self, directive: Directive, budget: float = settings.PUBLISH_BUDGET) -> None:
        """Publish a directive and wait for the stream's ack (retrying transport trouble)."""
        r = directive.run_info
        await self._publish(subjects.directive(r.wf_type, r.wf_id, r.id), encode_directive(directive),
                            directive.id, budget, f"{directive.kind} directive")

    async def directive_nowait(self, directive: Directive) -> asyncio.Future[PubAck]:
        """Send a directive now and return the future of its ack (for reports nothing depends on)."""
        r = directive.run_info
        return await self._connection.js.publish_async(
            subjects.directive(r.wf_type, r.wf_id, r.id), encode_directive(directive),
            headers={H_MSG_ID: directive.id},
        )
