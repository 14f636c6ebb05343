"""The workflow-type registry on ``grctl_registry.{wf_type}``: the last registration of a type wins
(``Nats-Rollup: sub``); a catalog is written in one atomic batch.

Entries are read on every start, so a found entry is kept in memory for ``CACHE_SECONDS`` (a worker
that registers again is seen within that time). A record that cannot be decoded is logged and treated
as absent: the type is "not registered" until a worker registers it again, which heals the record.
"""

from __future__ import annotations

import logging
import time

import msgspec
from nats.aio.client import Client as NATSClient

from grctl import settings
from grctl.engine.committer import GroupCommitter
from grctl.models.command import WorkflowTypeDef
from grctl.models.common import utcnow
from grctl.models.records import RegistryEntry
from grctl.nats import subjects
from grctl.nats.direct import get_last
from grctl.nats.jetstream import H_ROLLUP, OutMsg

log = logging.getLogger(__name__)

_entry_decoder = msgspec.msgpack.Decoder(RegistryEntry)


class Registry:
    def __init__(self, nc: NATSClient, committer: GroupCommitter) -> None:
        self._nc = nc
        self._committer = committer
        self._cache: dict[str, tuple[float, RegistryEntry]] = {}

    async def get(self, wf_type: str) -> RegistryEntry | None:
        cached = self._cache.get(wf_type)
        now = time.monotonic()
        if cached is not None and now - cached[0] < settings.REGISTRY_CACHE:
            return cached[1]
        stored = await get_last(self._nc, subjects.registry(wf_type))
        if stored is None:
            return None
        try:
            entry = _entry_decoder.decode(stored.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("the registry record of workflow type %r (seq %d) cannot be read (%s); treating the "
                        "type as not registered until a worker registers it again", wf_type, stored.seq, exc)
            return None
        self._cache[wf_type] = (now, entry)
        if len(self._cache) > 10_000:
            self._cache.clear()
        return entry

    async def event_timeout_ms(self, wf_type: str, event_name: str) -> int:
        """The registered execution timeout of an event handler; 0 (server default) when unknown."""
        entry = await self.get(wf_type)
        for event in entry.events if entry is not None else []:
            if isinstance(event, dict) and event.get("name") == event_name:
                return int(event.get("timeout_ms") or 0)
        return 0

    async def register(self, worker_id: str, types: list[WorkflowTypeDef]) -> None:
        """Write the catalog all-or-nothing; an empty catalog writes nothing."""
        latest = {t.type: t for t in types}  # one rollup per subject and batch
        if not latest:
            return
        now = utcnow()
        msgs = []
        for t in latest.values():
            entry = RegistryEntry(type=t.type, start_step=t.start_step, steps=t.steps,
                                  events=[msgspec.to_builtins(e) for e in t.events], queries=t.queries,
                                  start_step_timeout_ms=t.start_step_timeout_ms, worker_id=worker_id,
                                  registered_at=now)
            msgs.append(OutMsg(subjects.registry(t.type), msgspec.msgpack.encode(entry), {H_ROLLUP: "sub"}))
        await self._committer.submit(msgs)
        for wf_type in latest:
            self._cache.pop(wf_type, None)
