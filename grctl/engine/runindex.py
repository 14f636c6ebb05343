"""The engine's index of stored runs, for ``run.list`` (``grctl list``, ``Client.list_runs``).

Every run-info record (``grctl_run.{type}.{id}.{run}.info``, rewritten when a run is created, starts
and ends) reaches the index, whichever engine wrote it, in two ways:

- when the engine starts, an ordered consumer delivers the last record of every run: the fastest way
  to read them all (about 2 s per 100,000 runs);
- once it has caught up, that consumer is deleted, and the index follows the new records by reading
  the stream from its cursor (the sequence after the last record it saw) every second and before each
  listing.

The consumer is not kept because the server recounts a consumer's pending messages whenever a message
its filter matches is deleted, and for a filter over every run that count walks every run's subject:
with 100,000 runs stored, each run removed by the retention cost the server about 50 ms of CPU. A read
from a cursor leaves no state in the server. A listing is then a scan of memory: the newest 100 of
100,000 runs take milliseconds, where reading the records from the stream for each request would take
seconds.

Memory is bounded: the index holds every active run and the newest finished ones, up to ``max_runs``
runs in all (about 1 KiB each). Finished runs removed after the retention are not announced by the
stream: the index leaves out (and forgets) runs that ended longer ago than the retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import msgspec
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from grctl import settings
from grctl.lifecycle import cancel
from grctl.models.common import TERMINAL_STATUSES, RunInfo
from grctl.nats import subjects
from grctl.nats.direct import read_tail
from grctl.nats.retry import log_failure
from grctl.ops import metrics

log = logging.getLogger(__name__)

RUN_INFOS = "grctl_run.*.*.*.info"

_info_decoder = msgspec.msgpack.Decoder(RunInfo)


_ENDED = frozenset(str(s) for s in TERMINAL_STATUSES)
STUCK = "stuck"  # the key of stuck runs in overview()'s counts (they are counted under their status too)


class _Entry(NamedTuple):
    created: float  # Unix time: the sort key (newest first)
    run_id: str
    wf_id: str
    wf_type: str
    status: str
    ended: float  # Unix time the run ended, 0.0 while it has not
    seq: int  # the record's stream sequence: a newer record of the run replaces it, an older one not
    raw: bytes  # the record as stored: what run.list returns
    stuck: bool  # held by a mismatch between code and run (ours)


def _entry(data: bytes, seq: int) -> _Entry:
    info = _info_decoder.decode(data)
    ended = info.completed_at.timestamp() if info.completed_at and info.is_terminal else 0.0
    return _Entry(info.created_at.timestamp(), info.id, info.wf_id, info.wf_type, str(info.status), ended,
                  seq, data, info.stuck is not None)


@dataclass(frozen=True)
class RunFilter:
    """Which stored runs a listing wants: any of ``statuses`` (empty: all), of ``wf_type``, created in
    [``since``, ``until``), whose workflow id or run id starts with ``id_prefix``."""

    statuses: frozenset[str] = frozenset()
    wf_type: str = ""
    since: datetime | None = None
    until: datetime | None = None
    id_prefix: str = ""
    stuck: bool = False  # only runs held by a mismatch between code and run


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the listing goes on with the runs older than this one (newest first)."""

    created: float
    run_id: str


class RunIndex:
    def __init__(self, nc: NATSClient, js: JetStreamContext, retention: timedelta | None,
                 max_runs: int = settings.RUN_INDEX_MAX_RUNS,
                 poll_interval: float = settings.RUN_INDEX_POLL) -> None:
        self._nc = nc
        self._js = js
        self._retention = retention.total_seconds() if retention is not None else None
        self._max_runs = max(1, max_runs)
        self._poll_interval = poll_interval
        self._runs: dict[str, _Entry] = {}
        self._stuck: Counter[str] = Counter()  # stuck runs by workflow type (the gauge)
        self._sub: JetStreamContext.PushSubscription | None = None
        self._loaded_from = 0  # the stream's last sequence before the loading consumer was made
        self._last_loaded = 0  # the highest sequence the loading consumer delivered
        self._cursor = 0  # where the next read of new run infos starts (once loaded)
        self._reading = asyncio.Lock()
        self._follow_task: asyncio.Task[None] | None = None
        self._drop_task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    def __len__(self) -> int:
        return len(self._runs)

    async def start(self) -> None:
        await self.stop()  # a start tried again after a failure begins afresh
        self.loaded.clear()
        self._loaded_from = (await self._js.stream_info(subjects.STREAM)).state.last_seq
        self._sub = await self._js.subscribe(RUN_INFOS, stream=subjects.STREAM, ordered_consumer=True,
                                             deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, cb=self._on_msg,
                                             pending_msgs_limit=-1, pending_bytes_limit=-1)
        info = await self._sub.consumer_info()
        if not info.num_pending:
            self._switch_to_reads()  # nothing stored: nothing to wait for
        self._follow_task = asyncio.create_task(self._follow(), name="grctl-run-index")

    async def stop(self) -> None:
        if self._follow_task is not None:
            await cancel(self._follow_task)
            self._follow_task = None
        await self._drop_consumer()

    async def _on_msg(self, msg: Msg) -> None:
        try:
            meta = msg.metadata
        except (ValueError, AttributeError, TypeError):  # not a JetStream delivery: nothing to index
            return
        self._add(msg.data, meta.sequence.stream, msg.subject)
        self._last_loaded = max(self._last_loaded, meta.sequence.stream)
        if not self.loaded.is_set() and not meta.num_pending:
            self._switch_to_reads()

    def _switch_to_reads(self) -> None:
        """Loaded: follow from here by reads, and delete the consumer (in the background)."""
        self._cursor = max(self._loaded_from, self._last_loaded) + 1
        self.loaded.set()
        log.info("run index loaded: %d runs", len(self._runs))
        self._evict()
        self._drop_task = asyncio.get_running_loop().create_task(self._drop_consumer())

    async def _drop_consumer(self) -> None:
        sub, self._sub = self._sub, None
        if sub is None:
            return
        name = ""
        with contextlib.suppress(Exception):
            name = (await sub.consumer_info()).name
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if name:
            with contextlib.suppress(Exception):  # gone already; else it expires when inactive
                await self._js.delete_consumer(subjects.STREAM, name)

    def _add(self, data: bytes, seq: int, subject: str) -> None:
        try:
            entry = _entry(data, seq)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("run index: an undecodable run info on %s: %s", subject[:128], exc)
            return
        known = self._runs.get(entry.run_id)
        if known is None or known.seq < entry.seq:
            self._runs[entry.run_id] = entry
            if entry.stuck != (known is not None and known.stuck):  # only live runs are ever stuck
                self._stuck[entry.wf_type] += 1 if entry.stuck else -1
                metrics.stuck_runs(entry.wf_type, self._stuck[entry.wf_type])

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            if not self.loaded.is_set():
                continue
            try:
                await self.catch_up()
            except Exception as exc:  # the next round reads from the same cursor
                log_failure(log, "run index: reading new run infos", exc, logging.DEBUG)

    async def catch_up(self) -> None:
        """Read the run infos stored since the last read (the index must be loaded)."""
        async with self._reading:
            while True:
                found = await read_tail(self._nc, RUN_INFOS, self._cursor, settings.RUN_INDEX_BATCH)
                for stored in found:
                    self._add(stored.data, stored.seq, stored.subject)
                if found:
                    self._cursor = found[-1].seq + 1
                if len(found) < settings.RUN_INDEX_BATCH:
                    break
            self._evict()

    def _evict(self) -> None:
        """Beyond ``max_runs`` (and a tenth more, so eviction is not run for each new run), forget the
        oldest finished runs."""
        excess = len(self._runs) - self._max_runs
        if excess <= self._max_runs // 10:
            return
        finished = (e for e in self._runs.values() if e.ended)
        for entry in heapq.nsmallest(excess, finished):
            del self._runs[entry.run_id]

    async def wait_loaded(self, timeout: float = settings.RUN_INDEX_LOAD_WAIT) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.loaded.wait(), timeout)
        return self.loaded.is_set()

    def query(self, now: datetime, statuses: Collection[str] = (), wf_type: str = "",
              since: datetime | None = None, limit: int = settings.LIST_LIMIT,
              stuck: bool = False) -> list[bytes]:
        """The stored run infos that match, newest first (by creation time), at most ``limit``;
        ``stuck``: only runs held by a mismatch between code and run."""
        wanted = RunFilter(frozenset(statuses), wf_type, since, stuck=stuck)
        return [raw for raw, _ in self.page(now, wanted, min(limit, settings.MAX_LIST))]

    def live(self) -> list[bytes]:
        """The run infos of every run that has not ended (for the catalog check)."""
        return [e.raw for e in self._runs.values() if not e.ended and e.status not in _ENDED]

    def page(self, now: datetime, wanted: RunFilter, limit: int,
             after: Cursor | None = None) -> list[tuple[bytes, Cursor]]:
        """Up to ``limit`` matching run infos, newest first, older than ``after`` when given; each with
        the cursor that continues after it."""
        return self.overview(now, wanted, limit, after)[0]

    def overview(self, now: datetime, wanted: RunFilter, limit: int, after: Cursor | None = None,
                 ) -> tuple[list[tuple[bytes, Cursor]], dict[tuple[str, str], int]]:
        """``page()``, and in the same pass over the runs how many match every part of ``wanted`` but
        its statuses, its type and ``stuck``, per (workflow type, status), stuck runs counted again
        under the status ``STUCK``: what a listing shows beside its page."""
        top: list[_Entry] = []  # a min-heap of the newest ``limit`` matches
        counted: dict[tuple[str, str], int] = {}
        statuses, wf_type = wanted.statuses, wanted.wf_type
        older_than = after.created if after is not None else float("inf")
        tie = after.run_id if after is not None else ""
        loose = RunFilter(frozenset(), "", wanted.since, wanted.until, wanted.id_prefix)
        for entry in self._matching(now, loose):
            group = (entry.wf_type, entry.status)
            counted[group] = counted.get(group, 0) + 1
            if entry.stuck:
                counted[(entry.wf_type, STUCK)] = counted.get((entry.wf_type, STUCK), 0) + 1
            elif wanted.stuck:
                continue
            if (statuses and entry.status not in statuses) or (wf_type and entry.wf_type != wf_type):
                continue
            created = entry.created
            if created > older_than or (created == older_than and entry.run_id >= tie):
                continue  # on an earlier page
            if len(top) < limit:
                heapq.heappush(top, entry)
            elif top and entry > top[0]:
                heapq.heapreplace(top, entry)
        newest = sorted(top, reverse=True)
        return [(e.raw, Cursor(e.created, e.run_id)) for e in newest], counted

    def tally(self, now: datetime, wanted: RunFilter) -> dict[tuple[str, str], int]:
        """How many runs match, per workflow type and status (``wanted.statuses`` is ignored)."""
        counted: dict[tuple[str, str], int] = {}
        everything = RunFilter(frozenset(), wanted.wf_type, wanted.since, wanted.until, wanted.id_prefix)
        for entry in self._matching(now, everything):
            key = (entry.wf_type, entry.status)
            counted[key] = counted.get(key, 0) + 1
        return counted

    def _matching(self, now: datetime, wanted: RunFilter) -> Iterator[_Entry]:
        removed = now.timestamp() - self._retention if self._retention is not None else None
        floor = wanted.since.timestamp() if wanted.since is not None else None
        ceiling = wanted.until.timestamp() if wanted.until is not None else None
        statuses, wf_type, prefix, stuck = wanted.statuses, wanted.wf_type, wanted.id_prefix, wanted.stuck
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
            if ceiling is not None and entry.created >= ceiling:
                continue
            if prefix and not (entry.wf_id.startswith(prefix) or entry.run_id.startswith(prefix)):
                continue
            if stuck and not entry.stuck:
                continue
            yield entry
        for run_id in gone:
            self._runs.pop(run_id, None)
