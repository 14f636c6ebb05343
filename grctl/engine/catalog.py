"""``catalog.check`` (ours): which handlers that live runs still need would a new handler catalog drop?
The engine answers from its own state: the runs that have not ended (its run index), each run's state
(the step it is at or queued for, the timeout handler of its wait) and the catalog its type is
registered with now (what the running workers serve).

A handler counts as dropped when the registered catalog has it and the new one does not; a whole type
counts when the caller says its workers served it (``dropped``) and the new catalog lacks it. What a
live run needs: its type; the handler of the step it runs or is queued for (``start``, a step, or an
event handler); while it waits, the handler of its wait's timeout, and every event handler of its type
(any of those events may arrive); the completion-callback step a live child of it will report to.
grctld asks before a new generation takes over (docs/operations.md#deploying-new-code).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client as NATSClient

from grctl import settings
from grctl.engine.registry import Registry
from grctl.engine.runindex import RunIndex
from grctl.models.command import CatalogCheckCmd, CatalogNeed, WorkflowTypeDef
from grctl.models.common import RunInfo
from grctl.models.directive import Wait
from grctl.models.records import RegistryEntry, RunState, RunStateKind
from grctl.nats import subjects
from grctl.nats.direct import get_last

_info_decoder = msgspec.msgpack.Decoder(RunInfo)
_state_decoder = msgspec.msgpack.Decoder(RunState)


@dataclass(frozen=True, slots=True)
class Handlers:
    """What a catalog (new, or as registered) serves of one type."""

    start: bool
    steps: frozenset[str]
    events: frozenset[str]

    @classmethod
    def of(cls, entry: WorkflowTypeDef | RegistryEntry) -> Handlers:
        events = frozenset(str(e.get("name", "")) if isinstance(e, dict) else e.name for e in entry.events)
        return cls(bool(entry.start_step), frozenset(entry.steps), events)

    def has(self, kind: str, name: str) -> bool:
        if kind == "start":
            return self.start
        if kind == "event":
            return name in self.events or name in self.steps
        return name in self.steps or name in self.events  # a step task may name an event handler


@dataclass
class _Found:
    count: int = 0
    runs: list[str] = field(default_factory=list)


def needed(state: RunState, registered: Handlers) -> Iterator[tuple[str, str]]:
    """The (kind, handler) pairs a live run in ``state`` needs."""
    if state.kind in (RunStateKind.idle, RunStateKind.start):
        yield "start", "start"
        return
    if state.kind == RunStateKind.step:
        name = state.active_step_name
        if name == "start":
            yield "start", "start"
        elif name:
            yield ("event" if name in registered.events else "step"), name
        return
    if state.kind != RunStateKind.wait:
        return
    for event in sorted(registered.events):
        yield "event", event
    if state.active_task is not None:
        try:
            wait = state.active_task.message()
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
            return
        if isinstance(wait, Wait) and wait.timeout_step_name:
            yield "timeout", wait.timeout_step_name


class CatalogCheck:
    def __init__(self, nc: NATSClient, registry: Registry, runs: RunIndex) -> None:
        self._nc = nc
        self._registry = registry
        self._runs = runs

    async def needs(self, cmd: CatalogCheckCmd) -> list[CatalogNeed]:
        catalog = {t.type: Handlers.of(t) for t in cmd.types}
        dropped_types = set(cmd.dropped) - set(catalog)
        live = [_info_decoder.decode(raw) for raw in self._runs.live()]
        found: dict[tuple[str, str, str], _Found] = {}

        def note(info: RunInfo, kind: str, handler: str) -> None:
            entry = found.setdefault((info.wf_type, kind, handler), _Found())
            entry.count += 1
            if len(entry.runs) < settings.CATALOG_NAMED_RUNS:
                entry.runs.append(f"{info.wf_id}/{info.id}")

        checked = [i for i in live if i.wf_type in catalog]
        for info in live:
            if info.wf_type in dropped_types:
                note(info, "type", info.wf_type)
        # A live child whose parent asked for a completion callback: the parent will run that step.
        callbacks = sorted({(i.parent_wf_type, i.parent_wf_id, i.parent_run_id, i.parent_callback_step)
                            for i in live if i.parent_wf_type in catalog and i.parent_wf_id
                            and i.parent_run_id and i.parent_callback_step})
        kinds = {i.wf_type for i in checked} | {c[0] for c in callbacks}
        registered = {t: await self._registered(t) for t in kinds}
        for wf_type, wf_id, run_id, step in callbacks:
            before = registered[wf_type]
            if before is not None and before.has("step", step) and not catalog[wf_type].has("step", step):
                note(RunInfo(id=run_id, wf_id=wf_id, wf_type=wf_type), "step", step)
        gate = asyncio.Semaphore(settings.CATALOG_READS_AT_ONCE)

        async def check(info: RunInfo) -> None:
            old = registered[info.wf_type]
            if old is None:
                return
            async with gate:
                stored = await get_last(self._nc, subjects.run_state(info.wf_id, info.id))
            if stored is None:
                return
            for kind, handler in needed(_state_decoder.decode(stored.data), old):
                if old.has(kind, handler) and not catalog[info.wf_type].has(kind, handler):
                    note(info, kind, handler)

        await asyncio.gather(*(check(i) for i in checked))
        return [CatalogNeed(wf_type=t, kind=k, handler=h, count=f.count, runs=f.runs)
                for (t, k, h), f in sorted(found.items())]

    async def _registered(self, wf_type: str) -> Handlers | None:
        entry = await self._registry.get(wf_type)
        return Handlers.of(entry) if entry is not None else None
