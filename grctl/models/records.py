"""Engine-internal records kept in the stream: run state, timers, background tasks, registry
(docs/protocol.md#run-records, #timers, #background-tasks)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from grctl.models.common import ErrorDetails, RunStatus
from grctl.models.directive import ActiveTask, DirectiveWire


class RunStateKind(StrEnum):
    idle = "idle"
    start = "start"
    step = "step"
    wait = "wait"
    complete = "complete"
    fail = "fail"
    cancel = "cancel"
    terminate = "terminate"


TERMINAL_STATES = frozenset(
    {RunStateKind.complete, RunStateKind.fail, RunStateKind.cancel, RunStateKind.terminate}
)


class RunState(msgspec.Struct, omit_defaults=True):
    wf_id: str
    run_id: str
    kind: RunStateKind
    entered_at: datetime
    last_event_seq_id: int
    started_at: datetime | None = None
    active_directive_id: str = ""
    worker_id: str | None = None
    pending_cancel: DirectiveWire | None = None
    # Ours (ignored by the Go server): what the active dispatch was, so late or duplicate step
    # results and pick-ups can be recognised (docs/protocol.md#active-dispatch-in-the-run-state).
    active_step_name: str = ""
    active_history_seq_id: int = 0
    active_timer_id: str = ""
    # Ours: an event reached the workflow id's inbox during this run (so its end purges the inbox).
    inbox_used: bool = False
    # Ours: when a worker reported taking the active step (its timeout counts from then).
    picked_up_at: datetime | None = None
    # Ours: the task (or wait) the run is at, kept when the run ends, so that a retry resumes there.
    active_task: ActiveTask | None = None
    # Ours: "reason:handler" while the run is stuck on a code mismatch (reported once, cleared on pick-up).
    held: str = ""

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_STATES


class TimerKind(StrEnum):
    step_timeout = "step_timeout"
    wait_timeout = "wait_timeout"
    run_timeout = "run_timeout"  # ours: the run-level timeout


class Timer(msgspec.Struct, omit_defaults=True):
    id: str
    k: str
    wfid: str
    created: datetime
    expires: datetime
    d: DirectiveWire | None = None
    step: str = ""
    c: Any = None


class BgTaskKind(StrEnum):
    delete_timer = "delete_timer"
    delete_inbox_event = "delete_inbox_event"
    purge_run_residue = "purge_run_residue"
    notify_parent_complete = "notify_parent_complete"
    worker_terminate_run = "worker_terminate_run"
    purge_run = "purge_run"  # ours: remove a finished run's records once its retention has passed


class BackgroundTask(msgspec.Struct):
    kind: str
    deduplication_id: str
    payload: bytes


class DeleteTimer(msgspec.Struct):
    wf_id: str
    kind: str
    timer_id: str


class DeleteInboxEvent(msgspec.Struct):
    seq_id: int


class PurgeRunResidue(msgspec.Struct, omit_defaults=True):
    wf_id: str
    # Ours: scope the purge to one run where the subjects allow it
    # (docs/protocol.md#sweep-scoped-purges-and-retention).
    run_id: str = ""
    timer_ids: list[str] = msgspec.field(default_factory=list)
    inbox_up_to_seq: int = 0


class NotifyParentComplete(msgspec.Struct, omit_defaults=True):
    parent_wf_id: str
    step_name: str
    child_wf_id: str
    status: RunStatus
    result: Any = None
    error: ErrorDetails | None = None
    parent_run_id: str = ""  # ours: notify the parent by run, not by the latest run of its id
    parent_wf_type: str = ""  # ours: so the parent's run info is read by its exact subject


class WorkerTerminateRun(msgspec.Struct):
    worker_id: str
    run_id: str


class PurgeRun(msgspec.Struct):
    """Ours: the records of a finished run to remove (scheduled at its end for after the retention)."""

    wf_type: str
    wf_id: str
    run_id: str


BG_PAYLOAD_TYPES: dict[str, type[msgspec.Struct]] = {
    BgTaskKind.delete_timer: DeleteTimer,
    BgTaskKind.delete_inbox_event: DeleteInboxEvent,
    BgTaskKind.purge_run_residue: PurgeRunResidue,
    BgTaskKind.notify_parent_complete: NotifyParentComplete,
    BgTaskKind.worker_terminate_run: WorkerTerminateRun,
    BgTaskKind.purge_run: PurgeRun,
}


class LatestRun(msgspec.Struct):
    """Ours, on ``grctl_latest.{wf_id}``: the latest run of a workflow id, written with every start
    (compare-and-swap on this subject serialises concurrent starts of one id)."""

    run_id: str
    wf_type: str


class RegistryEntry(msgspec.Struct):
    type: str
    start_step: str = ""
    steps: list[str] = msgspec.field(default_factory=list)
    events: list[Any] = msgspec.field(default_factory=list)
    queries: list[str] = msgspec.field(default_factory=list)
    start_step_timeout_ms: int = 0
    worker_id: str = ""
    registered_at: datetime | None = None
