"""Reading a run's history: every stored event of ``grctl_history.{wf_id}.{run_id}`` from a sequence on,
in stream order, with batched direct gets (one request per page, no consumer to create or expire); and
following it live (``follow_history``) until the run's terminal event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from grctl.models.history import HistoryEvent, decode_history
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.jetstream import JetStreamError, get_last, get_next

PAGE = 512


async def read_subject(nc: NATSClient, subject: str, start_seq: int = 1, page: int = PAGE,
                       timeout: float = 5.0) -> list[tuple[int, bytes]]:
    """(sequence, data) of every message on ``subject`` with sequence >= ``start_seq``.

    The pages come from direct gets, which any replica of a replicated stream may answer, a lagging one
    included; the stream's leader then says which message is the subject's last, and whatever the
    pages missed is read from the leader. So a worker replaying a step sees every recorded event."""
    out = await _read_pages(nc, subject, start_seq, page, timeout)
    last = await get_last(nc, subject, timeout)
    seq = out[-1][0] + 1 if out else max(start_seq, 1)
    while last is not None and last.seq >= seq:
        missed = await get_next(nc, subject, seq, timeout)
        if missed is None:
            break
        out.append((missed.seq, missed.data))
        seq = missed.seq + 1
    return out


async def _read_pages(nc: NATSClient, subject: str, start_seq: int, page: int,
                      timeout: float) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    queue: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        queue.put_nowait(msg)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=collect)
    seq = max(start_seq, 1)
    try:
        while True:
            request = {"seq": seq, "next_by_subj": subject, "batch": page}
            await nc.publish(f"$JS.API.DIRECT.GET.{subjects.STREAM}", json.dumps(request).encode(),
                             reply=inbox)
            while True:
                msg = await asyncio.wait_for(queue.get(), timeout)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is None:
                    found = int(headers.get("Nats-Sequence", 0))
                    out.append((found, msg.data or b""))
                    seq = found + 1
                    continue
                if status == "404":
                    return out
                if status == "204":  # end of this page
                    if int(headers.get("Nats-Num-Pending", 0) or 0) > 0:
                        break
                    return out
                raise JetStreamError(int(status), 0, str(headers.get("Description", "")))
    finally:
        await sub.unsubscribe()


async def read_history(nc: NATSClient, wf_id: str, run_id: str, start_seq: int = 1) -> list[HistoryEvent]:
    """The decoded history of a run from ``start_seq`` on (undecodable events are skipped)."""
    events: list[HistoryEvent] = []
    for seq, data in await read_subject(nc, subjects.history(wf_id, run_id), start_seq):
        if not data:
            continue
        try:
            events.append(decode_history(data, seq=seq))
        except Exception:  # an event kind we do not know: not ours to interpret
            continue
    return events


FOLLOW_INACTIVE_THRESHOLD = 10.0


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
                                        inactive_threshold=FOLLOW_INACTIVE_THRESHOLD)
    try:
        while True:
            msg = await sub.next_msg(timeout=None)
            if not msg.data:
                continue
            try:
                event = decode_history(msg.data, seq=msg.metadata.sequence.stream)
            except Exception:  # an event kind we do not know: not ours to interpret
                continue
            yield event
            if event.is_terminal:
                return
    finally:
        try:
            await sub.unsubscribe()
            await connection.nc.request(f"$JS.API.CONSUMER.DELETE.{subjects.STREAM}.{sub._consumer}", b"",
                                        timeout=2.0)
        except Exception:  # the connection may be gone already; the consumer expires on its own
            pass
