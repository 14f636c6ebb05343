"""Types shared by every message family: run status, run info, error details, time helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import msgspec


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime (the only kind we ever put on the wire)."""
    return datetime.now(UTC)


class RunStatus(StrEnum):
    pending = "pending"
    scheduled = "scheduled"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    timed_out = "timed_out"
    terminated = "terminated"


TERMINAL_STATUSES = frozenset(
    {RunStatus.completed, RunStatus.failed, RunStatus.cancelled, RunStatus.timed_out, RunStatus.terminated}
)


class ErrorDetails(msgspec.Struct):
    """An error as it travels between worker, engine and client.

    Every key is always written: the Go server requires the first three, the public SDK reads the fourth.
    """

    type: str = ""
    message: str = ""
    stack_trace: str = ""
    qualified_type: str = ""


class StuckReason(StrEnum):
    """Ours: why a live run cannot go on with the code its workers have (docs/operations.md#stuck-runs)."""

    missing_handler = "missing_handler"  # a worker of the type lacks the step, event or timeout handler
    unbound_parameters = "unbound_parameters"  # the handler's parameters do not bind the stored payload
    no_worker = "no_worker"  # no worker took the step within its timeout (is the type served at all?)


class Stuck(msgspec.Struct, omit_defaults=True):
    """Ours: a run held because of a mismatch between the code and the run, not failed."""

    reason: str
    handler: str
    since: datetime
    worker_id: str = ""
    detail: str = ""


class RunInfo(msgspec.Struct, omit_defaults=True):
    """Identity and lifecycle of one workflow run; keys equal to their default are left out."""

    id: str
    wf_id: str
    wf_type: str
    status: RunStatus = RunStatus.pending
    worker_name: str | None = None
    parent_wf_id: str | None = None
    parent_wf_type: str | None = None
    parent_run_id: str | None = None
    parent_callback_step: str | None = None
    # Run-level timeout. The public SDK sends whole seconds; the Go type is nanoseconds (see timeout_seconds).
    timeout: int | None = None
    created_at: datetime = msgspec.field(default_factory=utcnow)
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    state: str | None = None
    history_seq_id: int = 0
    # Ours (the public peers ignore unknown keys): the run is held by a code mismatch, and the links
    # between a run and its retry (docs/operations.md#retrying-ended-runs).
    stuck: Stuck | None = None
    retry_of: str | None = None
    retried_as: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def timeout_seconds(self) -> float | None:
        """The run-level timeout in seconds, reading large values as Go nanoseconds."""
        if not self.timeout or self.timeout <= 0:
            return None
        if self.timeout >= 10**9 * 60:  # a minute or more in nanoseconds: a Go duration
            return self.timeout / 1e9
        return float(self.timeout)
