"""The workflow-type registry on ``grctl_registry.{wf_type}`` (PROTOCOL.md §4.7.3): the last
registration of a type wins (``Nats-Rollup: sub``); a catalog is written in one atomic batch."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NATSClient

from grctl.engine.committer import GroupCommitter
from grctl.models.command import WorkflowTypeDef
from grctl.models.common import utcnow
from grctl.models.records import RegistryEntry
from grctl.nats import subjects
from grctl.nats.jetstream import H_ROLLUP, OutMsg, get_last

_entry_decoder = msgspec.msgpack.Decoder(RegistryEntry)


class Registry:
    def __init__(self, nc: NATSClient, committer: GroupCommitter) -> None:
        self._nc = nc
        self._committer = committer

    async def get(self, wf_type: str) -> RegistryEntry | None:
        stored = await get_last(self._nc, subjects.registry(wf_type))
        return _entry_decoder.decode(stored.data) if stored is not None else None

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
