"""From the hosts' declarations to a schedule's state: which definition is in force.

Every grctld host declares its file's whole ``schedules:`` section; a schedule is in force when the
hosts that declare it agree. When they disagree, nothing is silently chosen: the definition in force
stays what it was (none for a new schedule) and the state says which hosts differ, and how, until the
files agree again. A schedule no host declares any more is removed (it fires no more)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from grctl.models.schedule import HostDeclaration, ScheduleSpec, ScheduleState
from grctl.models.schedule_clock import next_tick


def declarations(schedule_id: str, hosts: list[HostDeclaration]) -> list[tuple[str, ScheduleSpec]]:
    """(declarer, definition) of every host that declares ``schedule_id``, by declarer."""
    return sorted(((h.declarer, h.schedules[schedule_id]) for h in hosts if schedule_id in h.schedules),
                  key=lambda d: d[0])


def conflict_text(schedule_id: str, declared: list[tuple[str, ScheduleSpec]]) -> str:
    """Which hosts declare ``schedule_id`` differently, and in which keys."""
    first_host, first = declared[0]
    for host, spec in declared[1:]:
        if spec.digest() != first.digest():
            keys = [f for f in first.__struct_fields__ if getattr(first, f) != getattr(spec, f)]
            differ = ", ".join(f"{k}: {getattr(first, k)!r} vs {getattr(spec, k)!r}" for k in keys)
            return (f"schedule {schedule_id!r} is declared differently by {first_host} and {host} "
                    f"({differ}); the definition in force is unchanged until the files agree")
    return ""


def reconciled(schedule_id: str, hosts: list[HostDeclaration], current: ScheduleState | None,
               now: datetime) -> ScheduleState | None:
    """The state ``current`` becomes under the declarations of ``hosts``, or None when unchanged."""
    declared = declarations(schedule_id, hosts)
    declarers = [d for d, _ in declared]
    if not declared:
        if current is None or current.removed:
            return None
        return msgspec.structs.replace(current, removed=True, declared_by=[], conflict="", next_tick=None,
                                       buffered=None)
    base = current or ScheduleState(id=schedule_id)
    conflict = conflict_text(schedule_id, declared)
    if conflict:
        if current is not None and current.conflict == conflict and current.declared_by == declarers:
            return None
        return msgspec.structs.replace(base, conflict=conflict, declared_by=declarers)
    spec = declared[0][1]
    digest = spec.digest()
    if (current is not None and not current.removed and current.digest == digest and not current.conflict
            and current.declared_by == declarers):
        return None
    state = msgspec.structs.replace(base, spec=spec, digest=digest, conflict="", removed=False,
                                    declared_by=declarers)
    if current is None or current.digest != digest or current.removed:
        # A new or changed definition counts from now: the ticks of the old one are not caught up.
        last = state.last_tick if state.last_tick is not None and state.last_tick > now else now
        state.next_tick = next_tick(spec, last)
        state.buffered = None
    return state
