"""What the console reads from the stream besides the run index: one run's info, history and store,
the workflow types' registry records and consumers, and the workers it has seen register."""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from grctl import settings
from grctl.models.command import RegisterCmd, decode_command
from grctl.models.common import RunInfo, utcnow
from grctl.models.history import HistoryEvent
from grctl.models.records import RegistryEntry
from grctl.nats import subjects
from grctl.nats.direct import get_last, read_subject
from grctl.nats.history import read_history

log = logging.getLogger("grctl.console")



async def run_info(nc: NATSClient, wf_id: str, run_id: str) -> RunInfo | None:
    """The latest record of one run (any workflow type), or None."""
    stored = await get_last(nc, subjects.any_run_info(wf_id, run_id))
    return None if stored is None else msgspec.msgpack.decode(stored.data, type=RunInfo)


async def store(nc: NATSClient, wf_id: str, run_id: str) -> dict[str, Any]:
    """The run's store: the last value of every key, decoded (undecodable values are described)."""
    found: dict[str, Any] = {}
    prefix = subjects.kv(wf_id, run_id, "")
    for stored in await read_subject(nc, subjects.kv(wf_id, run_id, "*")):
        try:
            found[stored.subject.removeprefix(prefix)] = msgspec.msgpack.decode(stored.data)
        except msgspec.DecodeError:
            found[stored.subject.removeprefix(prefix)] = f"<{len(stored.data)} bytes, not msgpack>"
    return dict(sorted(found.items()))


async def registry(nc: NATSClient) -> list[RegistryEntry]:
    """Every registered workflow type's record (the last registration of each)."""
    entries = []
    for stored in await read_subject(nc, subjects.registry("*")):
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            entries.append(msgspec.msgpack.decode(stored.data, type=RegistryEntry))
    return sorted(entries, key=lambda e: e.type)


async def registered(nc: NATSClient, wf_type: str) -> RegistryEntry | None:
    """The registry record of one workflow type (what its workers registered last), or None."""
    stored = await get_last(nc, subjects.registry(wf_type))
    if stored is None:
        return None
    try:
        return msgspec.msgpack.decode(stored.data, type=RegistryEntry)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


async def steps_of(js: JetStreamContext, wf_type: str) -> tuple[int, int] | None:
    """(steps in flight, steps waiting for a worker) of a workflow type, from its workers' durable
    consumer: delivered and not yet settled (a worker holds a step's message until it has reported),
    and not yet delivered. None when the consumer does not exist (no worker has consumed yet)."""
    try:
        info = await js.consumer_info(subjects.STREAM, subjects.worker_consumer(wf_type))
    except Exception:  # not found, or NATS busy: the page shows "-"
        return None
    return info.num_ack_pending or 0, info.num_pending or 0


@dataclass
class SeenWorker:
    worker_id: str
    types: list[str]
    since: datetime
    last: datetime = field(default_factory=utcnow)

    @property
    def host(self) -> str:
        return self.worker_id.rpartition("@")[2] or "-"


class Registrations:
    """Listens (without answering: the engines' queue group does) to every worker registration, so the
    Workers page can show every worker process seen since this engine started, whichever engine
    answered it."""

    def __init__(self) -> None:
        self.workers: dict[str, SeenWorker] = {}
        self._sub: Subscription | None = None

    async def start(self, nc: NATSClient) -> None:
        self._sub = await nc.subscribe(subjects.API_WORKER, cb=self._on_msg)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        try:
            cmd = decode_command(msg.data)
        except Exception:  # not ours to judge: the engine answers it
            return
        if not isinstance(cmd.msg, RegisterCmd):
            return
        register = cmd.msg
        known = self.workers.get(register.worker_id)
        types = [t.type for t in register.types]
        if known is None:
            since = cmd.timestamp or utcnow()
            self.workers[register.worker_id] = SeenWorker(register.worker_id, types, since)
        else:
            known.types, known.last = types, utcnow()
        if len(self.workers) > settings.CONSOLE_SEEN_WORKERS:
            oldest = min(self.workers.values(), key=lambda w: w.last)
            del self.workers[oldest.worker_id]


async def latest_run(nc: NATSClient, wf_id: str) -> RunInfo | None:
    """The latest run of ``wf_id``, or None."""
    stored = await get_last(nc, subjects.latest_run_info(wf_id))
    return None if stored is None else msgspec.msgpack.decode(stored.data, type=RunInfo)


class Histories:
    """The histories of the runs the console shows, kept for the most recently asked
    ``CONSOLE_HISTORY_CACHE`` runs: a live page then reads only the events written since its last
    look, however long the history grows (a history is only ever appended to)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[str, str], list[HistoryEvent]] = OrderedDict()

    async def read(self, nc: NATSClient, wf_id: str, run_id: str) -> list[HistoryEvent]:
        key = (wf_id, run_id)
        known = self._kept.pop(key, [])
        fresh = await read_history(nc, wf_id, run_id, start_seq=known[-1].seq + 1 if known else 1)
        events = known + fresh
        self._kept[key] = events
        while len(self._kept) > settings.CONSOLE_HISTORY_CACHE:
            self._kept.popitem(last=False)
        return events
