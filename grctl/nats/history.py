"""Reading a run's history: every stored event of ``grctl_history.{wf_id}.{run_id}`` from a sequence on,
in stream order, with batched direct gets (one request per page, no consumer to create or expire); the
last event alone; and following the history live (``follow_history``) until the run's terminal event."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import msgspec
from nats.aio.client import Client as NATSClient
from nats.js.api import DeliverPolicy

from grctl import settings
from grctl.models.history import HistoryEvent, decode_history
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.direct import get_last, read_subject

log = logging.getLogger(__name__)


async def read_history(nc: NATSClient, wf_id: str, run_id: str, start_seq: int = 1) -> list[HistoryEvent]:
    """The decoded history of a run from ``start_seq`` on (undecodable events are skipped)."""
    events: list[HistoryEvent] = []
    for stored in await read_subject(nc, subjects.history(wf_id, run_id), start_seq):
        if not stored.data:
            continue
        try:
            events.append(decode_history(stored.data, seq=stored.seq))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):  # a kind we do not know
            continue
    return events


async def last_event(nc: NATSClient, wf_id: str, run_id: str,
                     timeout: float = settings.JS_API_TIMEOUT) -> HistoryEvent | None:
    """The run's last history event (one exact-subject read), or None when it has none or it cannot
    be decoded."""
    stored = await get_last(nc, subjects.history(wf_id, run_id), timeout=timeout)
    if stored is None or not stored.data:
        return None
    try:
        return decode_history(stored.data, seq=stored.seq)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):  # an event kind we do not know
        return None




async def follow_history(connection: Connection, wf_id: str,
                         run_id: str) -> AsyncGenerator[HistoryEvent, None]:
    """Every history event of a run in stream order, then each new one as it is written; ends after the
    run's terminal event (at once for a run that has ended). Undecodable events are skipped.

    An ordered push consumer (in memory, no acks) delivers the subject; it restarts itself after a gap
    or a reconnection. It is deleted when the iterator ends (else the server drops it once nobody has
    listened for a while): close the iterator when leaving early (``contextlib.aclosing``).
    """
    sub = await connection.js.subscribe(subjects.history(wf_id, run_id), stream=subjects.STREAM,
                                        ordered_consumer=True, deliver_policy=DeliverPolicy.ALL,
                                        inactive_threshold=settings.FOLLOW_INACTIVE_THRESHOLD)
    try:
        while True:
            msg = await sub.next_msg(timeout=None)
            if not msg.data:
                continue
            try:
                event = decode_history(msg.data, seq=msg.metadata.sequence.stream)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError):  # a kind we do not know
                continue
            yield event
            if event.is_terminal:
                return
    finally:
        try:
            info = await sub.consumer_info()
            await sub.unsubscribe()
            await connection.js.delete_consumer(subjects.STREAM, info.name)
        except Exception as exc:  # the connection may be gone already; the consumer expires on its own
            log.debug("removing the history consumer of run %s failed: %s", run_id, exc)
