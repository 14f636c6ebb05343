"""Reading a run's history: every stored event of ``grctl_history.{wf_id}.{run_id}`` from a sequence on,
in stream order, with batched direct gets (one request per page, no consumer to create or expire)."""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg

from grctl.models.history import HistoryEvent, decode_history
from grctl.nats import subjects
from grctl.nats.jetstream import JetStreamError

PAGE = 512


async def read_subject(nc: NATSClient, subject: str, start_seq: int = 1, page: int = PAGE,
                       timeout: float = 5.0) -> list[tuple[int, bytes]]:
    """(sequence, data) of every message on ``subject`` with sequence >= ``start_seq``."""
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
