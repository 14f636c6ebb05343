"""The planner's inputs: what the engine knows about one run when a directive arrives, and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from grctl import settings
from grctl.models.directive import Directive
from grctl.models.records import RunState, RunStateKind

# The settings' values as the planner uses them.
DEFAULT_STEP_TIMEOUT = timedelta(seconds=settings.ENGINE_STEP_TIMEOUT)
DEFAULT_WAIT_TIMEOUT = timedelta(seconds=settings.ENGINE_WAIT_TIMEOUT)
DEFAULT_RECOVERY_GRACE = timedelta(seconds=settings.RECOVERY_GRACE)
DEFAULT_RETENTION = timedelta(seconds=settings.RETENTION)


@dataclass(frozen=True, slots=True)
class PlanConfig:
    """The engine's settings the planner uses.

    ``step_timeout``/``wait_timeout``: used when a message asks for 0. ``recovery_grace``: the extra
    time a step gets when its deadline passed while this engine could not watch it (see
    ``transitions.step_timed_out``). ``retention``: how long a finished run's records are kept (None:
    for ever).
    """

    step_timeout: timedelta = DEFAULT_STEP_TIMEOUT
    wait_timeout: timedelta = DEFAULT_WAIT_TIMEOUT
    recovery_grace: timedelta = DEFAULT_RECOVERY_GRACE
    retention: timedelta | None = DEFAULT_RETENTION


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One run as read from the stream just before planning (docs/protocol.md#directive-processing).

    ``state_seq`` is the stream sequence of the run-state record (0 = none yet): the compare-and-swap
    value of the commit. ``next_event`` is the oldest inbox event not yet dispatched to a worker (its
    ``event_seq_id`` set to its stream sequence). ``inbox_last_seq`` is the last inbox sequence of the
    workflow id, read only for ``start`` so a new run skips events left by earlier runs.

    For a ``step_timeout`` only: ``reported_result`` is a result of the active step that its worker
    reported before the deadline but that has not been applied yet (it waits in the directive
    consumer, e.g. for redelivery after an engine crash), and ``watched_since`` is the moment since
    which this engine has been connected and consuming without a break.
    """

    wf_id: str
    run_id: str
    state: RunState | None = None
    state_seq: int = 0
    last_history_seq: int = 0
    next_event: Directive | None = None
    inbox_last_seq: int = 0
    reported_result: Directive | None = None
    watched_since: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state is not None and self.state.is_terminal

    @property
    def kind(self) -> RunStateKind | None:
        return self.state.kind if self.state is not None else None

    @property
    def active_timer_id(self) -> str:
        """The step or wait timer armed for the current dispatch, or "" when none is."""
        s = self.state
        if s is None or not s.active_directive_id:
            return ""
        if s.active_timer_id:
            return s.active_timer_id
        if s.kind == RunStateKind.step:
            return f"step_timeout.{s.active_directive_id}"
        if s.kind == RunStateKind.wait:
            return f"wait_timeout.{s.active_directive_id}"
        return ""

    @property
    def run_timer_id(self) -> str:
        return run_timer_id(self.run_id)


def run_timer_id(run_id: str) -> str:
    """The id of a run's run-level timeout timer: one per run, derived so it needs no storage."""
    return f"run_timeout.{run_id}"
