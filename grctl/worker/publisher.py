"""What a worker writes to the stream: its history events and its directives (step_picked_up,
step_result). History events are awaited for their ack; a directive can also be sent without waiting,
keeping its ack as a future, so a step does not pay one round trip per message. Messages published
on one connection are stored in the order they were sent."""

from __future__ import annotations

import asyncio
from datetime import datetime

from grctl.models.common import RunInfo, utcnow
from grctl.models.directive import Directive, encode_directive
from grctl.models.history import HistoryEvent, HistoryKind, encode_history
from grctl.nats import jetstream, subjects
from grctl.nats.connection import Connection

PUBLISH_TIMEOUT = 5.0


class Publisher:
    def __init__(self, connection: Connection, worker_id: str, timeout: float = PUBLISH_TIMEOUT) -> None:
        self._connection = connection
        self.worker_id = worker_id
        self._timeout = timeout

    async def history(
        self, run: RunInfo, kind: HistoryKind, msg: object, operation_id: str,
        timestamp: datetime | None = None,
    ) -> None:
        event = HistoryEvent(
            wf_id=run.wf_id, run_id=run.id, worker_id=self.worker_id, timestamp=timestamp or utcnow(),
            kind=kind, msg=msg, operation_id=operation_id,
        )
        await jetstream.publish(self._connection.nc, subjects.history(run.wf_id, run.id),
                                encode_history(event), timeout=self._timeout)

    async def directive(self, directive: Directive) -> None:
        """Publish a directive and wait for the stream's ack."""
        r = directive.run_info
        await jetstream.publish(self._connection.nc, subjects.directive(r.wf_type, r.wf_id, r.id),
                                encode_directive(directive), timeout=self._timeout)

    async def directive_nowait(self, directive: Directive) -> asyncio.Future[object]:
        """Send a directive now and return the future of its ack (await it with ``wait_ack``)."""
        r = directive.run_info
        return await self._connection.js.publish_async(
            subjects.directive(r.wf_type, r.wf_id, r.id), encode_directive(directive)
        )

    async def wait_ack(self, future: asyncio.Future[object]) -> None:
        await asyncio.wait_for(future, timeout=self._timeout)
