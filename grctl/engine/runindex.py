"""The engine's index of stored runs, for ``run.list`` (``grctl list``, ``Client.list_runs``).

Every run-info record (``grctl_run.{type}.{id}.{run}.info``, rewritten when a run is created, starts
and ends) reaches the index through an ordered consumer that first delivers the last record of every
run, then each new one as it is written, whichever engine wrote it. A listing is then a scan of memory:
the newest 100 of 100,000 runs take milliseconds, where reading the records from the stream for each
request would take seconds. The cost is a few hundred bytes per stored run and one read of every run
info when the engine starts (``run.list`` waits for it, up to ``LOAD_WAIT``).

Finished runs removed after the retention are not announced by the stream: the index leaves out (and
forgets) runs that ended longer ago than the retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from grctl.models.command import MAX_LIST
from grctl.models.common import RunInfo
from grctl.nats import subjects

log = logging.getLogger(__name__)

RUN_INFOS = "grctl_run.*.*.*.info"
LOAD_WAIT = 30.0

_info_decoder = msgspec.msgpack.Decoder(RunInfo)


class _Entry(NamedTuple):
    created: float  # Unix time: the sort key (newest first)
    run_id: str
    wf_type: str
    status: str
    ended: float  # Unix time the run ended, 0.0 while it has not
    raw: bytes  # the record as stored: what run.list returns


def _entry(data: bytes) -> _Entry:
    info = _info_decoder.decode(data)
    ended = info.completed_at.timestamp() if info.completed_at and info.is_terminal else 0.0
    return _Entry(info.created_at.timestamp(), info.id, info.wf_type, str(info.status), ended, data)


class RunIndex:
    def __init__(self, js: JetStreamContext, retention: timedelta | None) -> None:
        self._js = js
        self._retention = retention.total_seconds() if retention is not None else None
        self._runs: dict[str, _Entry] = {}
        self._sub: JetStreamContext.PushSubscription | None = None
        self.loaded = asyncio.Event()

    def __len__(self) -> int:
        return len(self._runs)

    async def start(self) -> None:
        await self.stop()  # a start tried again after a failure begins afresh
        self._sub = await self._js.subscribe(RUN_INFOS, stream=subjects.STREAM, ordered_consumer=True,
                                             deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, cb=self._on_msg,
                                             pending_msgs_limit=-1, pending_bytes_limit=-1)
        info = await self._sub.consumer_info()
        if not info.num_pending:
            self.loaded.set()  # nothing stored: nothing to wait for

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        try:
            entry = _entry(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("run index: an undecodable run info on %s: %s", msg.subject[:128], exc)
        else:
            self._runs[entry.run_id] = entry
        if not self.loaded.is_set():
            with contextlib.suppress(Exception):
                if not msg.metadata.num_pending:
                    self.loaded.set()
                    log.info("run index loaded: %d runs", len(self._runs))

    async def wait_loaded(self, timeout: float = LOAD_WAIT) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.loaded.wait(), timeout)
        return self.loaded.is_set()

    def query(self, now: datetime, statuses: Collection[str] = (), wf_type: str = "",
              since: datetime | None = None, limit: int = 100) -> list[bytes]:
        """The stored run infos that match, newest first (by creation time), at most ``limit``."""
        floor = since.timestamp() if since is not None else None
        top = heapq.nlargest(max(0, min(limit, MAX_LIST)), self._matching(now, statuses, wf_type, floor))
        return [e.raw for e in top]

    def _matching(self, now: datetime, statuses: Collection[str], wf_type: str,
                  floor: float | None) -> Iterator[_Entry]:
        removed = now.timestamp() - self._retention if self._retention is not None else None
        gone: list[str] = []
        for entry in self._runs.values():
            if removed is not None and entry.ended and entry.ended < removed:
                gone.append(entry.run_id)  # its records are removed (or about to be): forget it
                continue
            if statuses and entry.status not in statuses:
                continue
            if wf_type and entry.wf_type != wf_type:
                continue
            if floor is not None and entry.created < floor:
                continue
            yield entry
        for run_id in gone:
            self._runs.pop(run_id, None)
