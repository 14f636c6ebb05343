"""Ours: recurring runs. A schedule's definition (``ScheduleSpec``, as grctl.yaml declares it), what the
engine keeps about it in the stream (``ScheduleState``, ``HostDeclaration``, ``Tick``) and the API
commands that operate it (docs/protocol.md#schedules). When ticks fall due is in ``schedule_clock``."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from grctl import settings


class Overlap(StrEnum):
    """What a tick does while the schedule's previous run is still running."""

    skip = "skip"  # the tick starts nothing
    buffer_one = "buffer_one"  # the tick's run starts once the previous run ends (one waits at most)
    allow_all = "allow_all"  # the tick's run starts at once, beside the previous one
    cancel_other = "cancel_other"  # the previous run is cancelled, the tick's run starts at once
    terminate_other = "terminate_other"  # the previous run is terminated, the tick's run starts at once


DEFAULT_CATCHUP_WINDOW = settings.SCHEDULE_CATCHUP_WINDOW
DEFAULT_TIMEZONE = settings.SCHEDULE_TIMEZONE


class ScheduleSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One schedule's definition: the workflow type and input, ``cron`` (five fields, read in
    ``timezone``) or ``every`` (seconds, ticks aligned on the Unix epoch), and the options."""

    workflow: str
    input: Any = None
    cron: str = ""
    every: float = 0.0
    timezone: str = DEFAULT_TIMEZONE
    jitter: float = 0.0  # seconds: each tick fires up to this much later (the same delay on every host)
    start: datetime | None = None  # no tick before
    end: datetime | None = None  # no tick after
    overlap: Overlap = Overlap.skip
    catchup_window: float = DEFAULT_CATCHUP_WINDOW
    paused: bool = False

    def digest(self) -> str:
        """A short fingerprint of the definition: two hosts declare the same schedule when equal."""
        encoded = msgspec.json.encode(self, order="sorted")
        return hashlib.sha256(encoded).hexdigest()[:16]


class HostDeclaration(msgspec.Struct, kw_only=True):
    """Every schedule one grctld host's file declares (``grctl_sched.host.{declarer key}``)."""

    declarer: str
    schedules: dict[str, ScheduleSpec]
    at: datetime


class ScheduleState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The engine's record of one schedule (``grctl_sched.state.{id}``), written with compare-and-swap.

    ``spec`` is the definition in force (None: none could be applied yet); ``conflict`` says why the
    hosts' declarations disagree, in which case ``spec`` stays what it was. ``last_tick`` is the latest
    tick handled (fired, skipped or missed), so a tick seen again is recognised."""

    id: str
    spec: ScheduleSpec | None = None
    digest: str = ""
    declared_by: list[str] = msgspec.field(default_factory=list)
    conflict: str = ""
    removed: bool = False  # no host declares it any more: it fires no more
    operator_paused: bool = False
    pause_note: str = ""
    last_tick: datetime | None = None
    last_wf_id: str = ""
    next_tick: datetime | None = None
    buffered: datetime | None = None  # buffer_one: the tick waiting for the previous run to end
    fired: int = 0
    skipped: int = 0
    missed: int = 0
    updated: datetime | None = None

    @property
    def active(self) -> bool:
        return self.spec is not None and not self.removed

    @property
    def paused(self) -> bool:
        return self.operator_paused or (self.spec is not None and self.spec.paused)


class TickKind(StrEnum):
    tick = "tick"  # a tick of the schedule fell due
    buffer = "buffer"  # look again whether the buffered tick's run may start


class Tick(msgspec.Struct, kw_only=True):
    """The payload of a schedule's pending message (``grctl_sched_timer.{id}.{kind}``), stored on
    ``grctl_sched_fired`` when it falls due."""

    id: str
    kind: TickKind
    tick: datetime
    digest: str


# --- API commands (ours, on grctl_api.schedules) ---------------------------------------------------


class DeclareCmd(msgspec.Struct, kw_only=True):
    """A host's whole ``schedules:`` section (empty: it declares none any more)."""

    declarer: str
    schedules: dict[str, ScheduleSpec]


class DeclareResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    applied: list[str] = msgspec.field(default_factory=list)  # in force as this host declares them
    removed: list[str] = msgspec.field(default_factory=list)  # no host declares them any more
    elsewhere: list[str] = msgspec.field(default_factory=list)  # dropped here, other hosts declare them
    conflicts: dict[str, str] = msgspec.field(default_factory=dict)


class WithdrawCmd(msgspec.Struct, kw_only=True):
    """Withdraw every schedule ``declarer`` declared, as if its file declared none (a host retired)."""

    declarer: str


class ScheduleListCmd(msgspec.Struct):
    pass


class ScheduleCmd(msgspec.Struct, kw_only=True, omit_defaults=True):
    """trigger, pause, resume (``note``: why it is paused)."""

    id: str
    note: str = ""


class BackfillCmd(msgspec.Struct, kw_only=True):
    """Run every tick from ``start`` to ``end`` (both included) that has no run yet."""

    id: str
    start: datetime
    end: datetime


class RunOutcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one tick did: ``started`` (its run's workflow id), or why not."""

    tick: datetime
    wf_id: str
    action: str  # started, exists (the tick had its run already), skipped, buffered, missed
    detail: str = ""


class RunOutcomes(msgspec.Struct):
    outcomes: list[RunOutcome]


class ScheduleView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One row of ``schedule.list``: the state, its next fire times and its last run's status."""

    state: ScheduleState
    next_fires: list[datetime] = msgspec.field(default_factory=list)
    last_status: str = ""
