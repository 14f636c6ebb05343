"""Reading the stream without a consumer: direct gets by subject (the last message, the next one from a
sequence on) and paged batch reads of every message of a subject. No JetStream API call and no consumer
to create or expire, so the cost does not depend on how many readers there are."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg

from grctl.nats import subjects
from grctl.nats.jetstream import JetStreamError

PAGE = 512


@dataclass(slots=True)
class StoredMsg:
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]


def _stored(msg: Msg) -> StoredMsg | None:
    headers = msg.headers or {}
    status = headers.get("Status")
    if status:
        if status in ("404", "204"):
            return None
        raise JetStreamError(int(status), 0, str(headers.get("Description", "")))
    return StoredMsg(
        seq=int(headers.get("Nats-Sequence", 0)),
        subject=headers.get("Nats-Subject", ""),
        data=msg.data or b"",
        headers=dict(headers),
    )


async def get_last(nc: NATSClient, subject: str, timeout: float = 5.0) -> StoredMsg | None:
    """The last stored message on ``subject`` (wildcards allowed, but an exact subject is what stays
    cheap as the stream grows), or None."""
    msg = await nc.request(f"$JS.API.DIRECT.GET.{subjects.STREAM}.{subject}", b"", timeout=timeout)
    return _stored(msg)


async def get_next(nc: NATSClient, subject: str, from_seq: int, timeout: float = 5.0) -> StoredMsg | None:
    """The first stored message on ``subject`` with sequence >= ``from_seq``, or None."""
    req = json.dumps({"seq": max(from_seq, 1), "next_by_subj": subject}).encode()
    msg = await nc.request(f"$JS.API.DIRECT.GET.{subjects.STREAM}", req, timeout=timeout)
    return _stored(msg)


async def _paged(nc: NATSClient, request: dict[str, object], page: int, timeout: float,
                 limit: int | None = None) -> list[StoredMsg]:
    """Run a batch direct get (``request`` without ``batch``/``seq``), continuing page after page until
    the end of the matches (or ``limit`` messages)."""
    out: list[StoredMsg] = []
    queue: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        queue.put_nowait(msg)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=collect)
    seq = int(request.pop("seq", 1) or 1)  # type: ignore[call-overload]
    try:
        while True:
            size = page if limit is None else min(page, limit - len(out))
            body = {**request, "seq": seq, "batch": size}
            await nc.publish(f"$JS.API.DIRECT.GET.{subjects.STREAM}", json.dumps(body).encode(), reply=inbox)
            while True:
                msg = await asyncio.wait_for(queue.get(), timeout)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is None:
                    stored = _stored(msg)
                    assert stored is not None
                    out.append(stored)
                    seq = stored.seq + 1
                    continue
                if status == "404":
                    return out
                if status == "204":  # the end of this page
                    more = int(headers.get("Nats-Num-Pending", 0) or 0) > 0
                    if more and (limit is None or len(out) < limit):
                        break
                    return out
                raise JetStreamError(int(status), 0, str(headers.get("Description", "")))
    finally:
        await sub.unsubscribe()


async def read_subject(nc: NATSClient, subject: str, start_seq: int = 1, page: int = PAGE,
                       timeout: float = 5.0) -> list[StoredMsg]:
    """Every stored message on ``subject`` (wildcards allowed) with sequence >= ``start_seq``, in stream
    order."""
    return await _paged(nc, {"seq": max(start_seq, 1), "next_by_subj": subject}, page, timeout)
