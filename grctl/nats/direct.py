"""Reading the stream without a consumer: the last message of a subject, the next one from a sequence
on, and paged batch reads of every message of a subject. No consumer to create or expire, so the cost
does not depend on how many readers there are.

On a single-node stream these are direct gets. On a replicated stream a direct get may be answered by
any replica, including a follower that has not applied the latest acknowledged writes (seen: about 1 in
60 reads through a follower right after a write), and a worker would then read a store value or a
history one step behind. So on a replicated stream a single read goes to the stream's leader
(``$JS.API.STREAM.MSG.GET``, which only the leader answers: about 20 % dearer), and a paged read is
checked against the leader's last message of the subject, reading from the leader what a lagging
replica's pages missed. Whether the stream is replicated is asked once per connection (and again after
a reconnection).

Every read tries again after transport trouble for up to ``settings.READ_BUDGET`` seconds, in short
steps: while the cluster elects a leader (the stream's, or the JetStream meta leader's) reads are
refused for a second or two, and each caller would otherwise need its own loop to ride that out.
"""

from __future__ import annotations

import asyncio
import base64
import json
import weakref
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg

from grctl import settings
from grctl.nats import subjects
from grctl.nats.jetstream import JetStreamError
from grctl.nats.requests import guard, request
from grctl.nats.retry import retrying

ERR_NO_MESSAGE = 10037

_replicated: weakref.WeakKeyDictionary[NATSClient, asyncio.Future[bool]] = weakref.WeakKeyDictionary()


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


async def replicated(nc: NATSClient) -> bool:
    """Is the stream replicated (so reads must go to its leader)? Asked once per connection; when it
    cannot be told (no stream yet, no answer), the answer is not kept and reads go to the leader."""
    known = _replicated.get(nc)
    if known is not None and known.done() and not known.cancelled() and known.exception() is None:
        return bool(known.result())  # the common case, on every read: no future made for it
    if known is None or (known.done() and (known.cancelled() or known.exception() is not None)):
        known = _replicated[nc] = asyncio.ensure_future(_stream_replicas(nc))
    try:
        return await asyncio.shield(known)
    except Exception:
        _replicated.pop(nc, None)
        return True


def forget_stream_layout(nc: NATSClient) -> None:
    """Ask again before the next read (after a reconnection, or once the stream's replicas changed)."""
    _replicated.pop(nc, None)


async def _stream_info(nc: NATSClient) -> dict[str, Any]:
    """The stream's info, answered by its leader."""
    reply = await request(nc, f"$JS.API.STREAM.INFO.{subjects.STREAM}", b"", timeout=settings.READ_TIMEOUT)
    info = json.loads(reply.data)
    if "error" in info:
        raise JetStreamError(info["error"].get("code", 0), info["error"].get("err_code", 0),
                             info["error"].get("description", ""))
    return dict(info)


async def _stream_replicas(nc: NATSClient) -> bool:
    info = await _stream_info(nc)
    return int(info.get("config", {}).get("num_replicas") or 1) > 1


async def _leader_holds(nc: NATSClient, seq: int) -> bool:
    """Does the stream's leader hold message ``seq`` yet? A leader elected a moment ago can answer
    reads before it has applied all that its predecessor committed, so a read that finds nothing is
    an answer only once the leader has reached the message that led to the read."""
    info = await _stream_info(nc)
    return int(info.get("state", {}).get("last_seq") or 0) >= seq


def _parse_headers(block: bytes) -> dict[str, str]:
    """A stored message's header block (``NATS/1.0\r\nKey: Value\r\n...``) as a dict."""
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", errors="replace").split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip()] = value.strip()
    return headers


async def _leader_get(nc: NATSClient, body: dict[str, object], timeout: float) -> StoredMsg | None:
    reply = await request(nc, f"$JS.API.STREAM.MSG.GET.{subjects.STREAM}", json.dumps(body).encode(),
                             timeout=timeout)
    found = json.loads(reply.data) if reply.data else {}
    err = found.get("error")
    if err:
        if err.get("err_code") == ERR_NO_MESSAGE:
            return None
        raise JetStreamError(err.get("code", 0), err.get("err_code", 0), err.get("description", ""))
    msg = found["message"]
    headers = _parse_headers(base64.b64decode(msg["hdrs"])) if msg.get("hdrs") else {}
    headers.update({"Nats-Stream": subjects.STREAM, "Nats-Subject": msg["subject"],
                    "Nats-Sequence": str(msg["seq"]), "Nats-Time-Stamp": msg.get("time", "")})
    return StoredMsg(seq=int(msg["seq"]), subject=msg["subject"],
                     data=base64.b64decode(msg.get("data") or ""), headers=headers)


async def get_last(nc: NATSClient, subject: str, timeout: float = settings.READ_TIMEOUT,
                   budget: float = settings.READ_BUDGET, known_seq: int = 0) -> StoredMsg | None:
    """The last stored message on ``subject`` (wildcards allowed, but an exact subject is what stays
    cheap as the stream grows), or None. ``known_seq``: a sequence the caller knows is stored (and
    committed with what it reads): on a replicated stream the answer comes only from a leader that
    holds it. A leader elected a moment ago may not have applied what its predecessor committed, and
    would answer with an older value as readily as with none, so it is asked first whether it holds
    ``known_seq`` (and once more when it finds nothing, in case the leader changed in between)."""

    async def once() -> StoredMsg | None:
        if await replicated(nc):
            if known_seq and not await _leader_holds(nc, known_seq):
                raise JetStreamError(503, 0, "the stream's leader has not caught up yet")
            found = await _leader_get(nc, {"last_by_subj": subject}, timeout)
            if found is None and known_seq and not await _leader_holds(nc, known_seq):
                raise JetStreamError(503, 0, "the stream's leader has not caught up yet")
            return found
        msg = await request(nc, f"$JS.API.DIRECT.GET.{subjects.STREAM}.{subject}", b"", timeout=timeout)
        return _stored(msg)

    return await retrying(once, budget, settings.READ_BACKOFF, f"reading {subject}")


async def get_next(nc: NATSClient, subject: str, from_seq: int, timeout: float = settings.READ_TIMEOUT,
                   budget: float = settings.READ_BUDGET) -> StoredMsg | None:
    """The first stored message on ``subject`` with sequence >= ``from_seq``, or None."""
    body = {"seq": max(from_seq, 1), "next_by_subj": subject}

    async def once() -> StoredMsg | None:
        if await replicated(nc):
            return await _leader_get(nc, body, timeout)
        payload = json.dumps(body).encode()
        msg = await request(nc, f"$JS.API.DIRECT.GET.{subjects.STREAM}", payload, timeout=timeout)
        return _stored(msg)

    return await retrying(once, budget, settings.READ_BACKOFF, f"reading {subject}")


async def _paged(nc: NATSClient, query: dict[str, object], page: int, timeout: float,
                 limit: int | None = None) -> list[StoredMsg]:
    """Run a batch direct get (``query`` without ``batch``/``seq``), continuing page after page until
    the end of the matches (or ``limit`` messages)."""
    out: list[StoredMsg] = []
    queue: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        queue.put_nowait(msg)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=collect)
    seq = int(query.pop("seq", 1) or 1)  # type: ignore[call-overload]
    try:
        while True:
            size = page if limit is None else min(page, limit - len(out))
            body = {**query, "seq": seq, "batch": size}
            await nc.publish(f"$JS.API.DIRECT.GET.{subjects.STREAM}", json.dumps(body).encode(), reply=inbox)
            while True:
                async with asyncio.timeout(timeout):  # not wait_for: it can drop a stop's cancel
                    msg = await guard(nc, queue.get())
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


async def read_subject(nc: NATSClient, subject: str, start_seq: int = 1, page: int = settings.READ_PAGE,
                       timeout: float = settings.JS_API_TIMEOUT,
                       budget: float = settings.READ_BUDGET) -> list[StoredMsg]:
    """Every stored message on ``subject`` (wildcards allowed) with sequence >= ``start_seq``, in stream
    order. On a replicated stream, what a lagging replica's pages missed is read from the leader."""

    async def once() -> list[StoredMsg]:
        out = await _paged(nc, {"seq": max(start_seq, 1), "next_by_subj": subject}, page, timeout)
        if not await replicated(nc):
            return out
        last = await _leader_get(nc, {"last_by_subj": subject}, timeout)
        seq = out[-1].seq + 1 if out else max(start_seq, 1)
        while last is not None and last.seq >= seq:
            missed = await _leader_get(nc, {"seq": seq, "next_by_subj": subject}, timeout)
            if missed is None:
                break
            out.append(missed)
            seq = missed.seq + 1
        return out

    return await retrying(once, budget, settings.READ_BACKOFF, f"reading {subject}")


async def read_tail(nc: NATSClient, subject: str, start_seq: int, limit: int, page: int = settings.READ_PAGE,
                    timeout: float = settings.READ_TIMEOUT) -> list[StoredMsg]:
    """Up to ``limit`` stored messages on ``subject`` (wildcards allowed) with sequence >= ``start_seq``,
    as whichever replica answers has them: for a reader that keeps a cursor (the sequence after the
    last message it got) and comes back. A lagging replica returns a prefix of what the leader has,
    never a sequence with holes, so the next read from the cursor picks up the rest. Cheaper than a
    consumer for a wildcard over many subjects: the server keeps no state for it."""

    async def once() -> list[StoredMsg]:
        return await _paged(nc, {"seq": max(start_seq, 1), "next_by_subj": subject}, page, timeout, limit)

    return await retrying(once, settings.READ_BUDGET, settings.READ_BACKOFF, f"reading {subject}")
