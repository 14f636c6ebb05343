"""The JetStream writes the protocol needs and nats-py has no helper for: atomic batch publish, message
schedules, purge by subject, delete by sequence, and the stream itself. Reads are in ``direct``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.aio.client import Client as NATSClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError
from ulid import ULID

from grctl import settings
from grctl.nats import subjects
from grctl.nats.requests import request
from grctl.nats.stream_settings import StreamSettings

log = logging.getLogger(__name__)

# JetStream error codes the engine interprets.
ERR_WRONG_LAST_SEQUENCE = 10071
ERR_DUPLICATE_IN_BATCH = 10201
ERR_TOO_MANY_INFLIGHT = 10210
ERR_STREAM_NAME_IN_USE = 10058
ERR_INSUFFICIENT_RESOURCES = 10023  # the server's storage limit is reached (503)
ERR_STORAGE_RESOURCES_EXCEEDED = 10047  # the account's storage limit is reached

H_MSG_ID = "Nats-Msg-Id"
H_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
# The last-sequence check made against another subject (a filter) than the one written.
H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
H_BATCH_ID = "Nats-Batch-Id"
H_BATCH_SEQ = "Nats-Batch-Sequence"
H_BATCH_COMMIT = "Nats-Batch-Commit"
H_SCHEDULE = "Nats-Schedule"
H_SCHEDULE_TARGET = "Nats-Schedule-Target"
H_ROLLUP = "Nats-Rollup"


@dataclass(slots=True)
class OutMsg:
    """One message of a batch."""

    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


class JetStreamError(Exception):
    """A JetStream API error reply: ``code`` is the HTTP-like status, ``err_code`` the JetStream code."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} ({code}/{err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description


def storage_full(exc: BaseException) -> bool:
    """Did JetStream refuse a write because its storage is full (the server's or the account's limit,
    or the stream's ``max_bytes`` with the discard-new policy)?"""
    if not isinstance(exc, JetStreamError):
        return False
    if exc.err_code in (ERR_INSUFFICIENT_RESOURCES, ERR_STORAGE_RESOURCES_EXCEEDED):
        return True
    return "maximum bytes exceeded" in exc.description.lower()


def format_schedule_time(when: datetime) -> str:
    """UTC time as Go's RFC3339Nano: up to 9 fraction digits, trailing zeros dropped, ``Z`` suffix."""
    when = when.astimezone(UTC)
    base = when.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{when.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def schedule_headers(expires: datetime, target: str) -> dict[str, str]:
    return {H_SCHEDULE: f"@at {format_schedule_time(expires)}", H_SCHEDULE_TARGET: target}


def _raise_on_error(data: bytes) -> dict:
    if not data:
        return {}
    reply = json.loads(data)
    err = reply.get("error")
    if err:
        raise JetStreamError(err.get("code", 0), err.get("err_code", 0), err.get("description", ""))
    return reply


async def publish_batch(nc: NATSClient, msgs: list[OutMsg], timeout: float = settings.JS_API_TIMEOUT) -> dict:
    """Publish ``msgs`` to the stream as one atomic batch; all are stored or none is.

    Returns the publish ack of the commit (``{"stream", "seq", "batch", "count"}``), raises
    ``JetStreamError`` when the server refuses the batch.
    """
    if not msgs:
        raise ValueError("an atomic batch needs at least one message")
    batch_id = str(ULID())
    last = len(msgs)
    for n, msg in enumerate(msgs, start=1):
        headers = dict(msg.headers)
        headers[H_BATCH_ID] = batch_id
        headers[H_BATCH_SEQ] = str(n)
        if n == last:
            headers[H_BATCH_COMMIT] = "1"
            reply = await request(nc, msg.subject, msg.data, timeout=timeout, headers=headers)
            return _raise_on_error(reply.data)
        if n == 1:
            # The first message as a request: flow control and early errors (e.g. atomic disabled).
            reply = await request(nc, msg.subject, msg.data, timeout=timeout, headers=headers)
            _raise_on_error(reply.data)
        else:
            await nc.publish(msg.subject, msg.data, headers=headers)
    raise AssertionError("unreachable")


async def publish(nc: NATSClient, subject: str, data: bytes, headers: dict[str, str] | None = None,
                  timeout: float = settings.JS_API_TIMEOUT) -> dict:
    """A JetStream publish awaited for its ack, through a plain request (cheaper than nats-py's)."""
    reply = await request(nc, subject, data, timeout=timeout, headers=headers)
    ack = _raise_on_error(reply.data)
    if "seq" not in ack:
        raise JetStreamError(503, 0, f"no stream answered for {subject}")
    return ack


async def purge(nc: NATSClient, subject_filter: str, keep: int | None = None,
                timeout: float = settings.JS_API_TIMEOUT, up_to_seq: int | None = None) -> int:
    """Purge the stream's messages matching ``subject_filter`` (only those with a sequence below
    ``up_to_seq`` when given); returns how many went."""
    body: dict = {"filter": subject_filter}
    if keep is not None:
        body["keep"] = keep
    if up_to_seq is not None:
        body["seq"] = up_to_seq
    reply = await request(nc, f"$JS.API.STREAM.PURGE.{subjects.STREAM}", json.dumps(body).encode(),
                             timeout=timeout)
    return int(_raise_on_error(reply.data).get("purged", 0))


async def delete_msg(nc: NATSClient, seq: int, timeout: float = settings.JS_API_TIMEOUT) -> bool:
    body = json.dumps({"seq": seq, "no_erase": True}).encode()
    reply = await request(nc, f"$JS.API.STREAM.MSG.DELETE.{subjects.STREAM}", body, timeout=timeout)
    try:
        _raise_on_error(reply.data)
    except JetStreamError as exc:
        if exc.err_code == 10043 or exc.code == 404:  # already gone
            return False
        raise
    return True


async def ensure_stream(js: JetStreamContext, memory: bool = False,
                        settings: StreamSettings | None = None) -> None:
    """Create the ``grctl_state`` stream or bring an existing one up to the flags the protocol needs and
    to the operator's ``settings`` (replicas, limits); StreamSettingsError says why when it cannot."""
    settings = settings or StreamSettings()
    config = settings.apply(StreamConfig(
        name=subjects.STREAM,
        subjects=list(subjects.STREAM_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.MEMORY if memory else StorageType.FILE,
        discard=DiscardPolicy.OLD,
        allow_direct=True,
        allow_msg_schedules=True,
        allow_atomic=True,
        allow_rollup_hdrs=True,
    ))
    try:
        await js.add_stream(config)
        log.info("stream %s: %s", subjects.STREAM, settings.describe())
        return
    except APIError as exc:
        if exc.err_code != ERR_STREAM_NAME_IN_USE:
            raise settings.explain(exc.err_code or 0, exc.description or "", "create") from exc
    info = await js.stream_info(subjects.STREAM)
    current = info.config
    settings.check_update(current, info.state.bytes)
    wanted = sorted(set(current.subjects or []) | set(subjects.STREAM_SUBJECTS))
    updated = settings.apply(current.evolve(
        subjects=wanted, allow_direct=True, allow_msg_schedules=True, allow_atomic=True,
        allow_rollup_hdrs=True,
    ))
    try:
        await js.update_stream(updated)
    except APIError as exc:
        raise settings.explain(exc.err_code or 0, exc.description or "", "update") from exc
    if (current.num_replicas or 1) != settings.replicas:
        log.info("stream %s: replicas changed from %d to %d", subjects.STREAM, current.num_replicas or 1,
                 settings.replicas)
    log.info("updated stream %s to the protocol's settings and %s", subjects.STREAM, settings.describe())


CONSUMER_PAGE = 256  # the server lists consumers in pages of this size


async def consumers(js: JetStreamContext) -> list[ConsumerInfo]:
    """Every consumer of the state stream (the server answers in pages)."""
    found: list[ConsumerInfo] = []
    while True:
        page = await js.consumers_info(subjects.STREAM, offset=len(found))
        found.extend(page)
        if len(page) < CONSUMER_PAGE:
            return found
