"""The shared building blocks of the transitions (docs/protocol.md#transitions): dispatch a step (T4), park in
a wait (T5), and end a run (T6 complete, T8 terminate, T9 cancel, T10 fail, and our run timeout).

Pure: every function maps (context, inputs) to records. Our rules on top of the Go server's:
- every dispatched worker task gets ``r.history_seq_id = last_history_seq + 1`` (its replay window), and
  the run state remembers the dispatch (step name, that sequence, timer id) so late results can be recognised;
- the timer of the dispatch being left is cancelled in the same commit (the run-state record carries
  the scheduler-purge headers), and a terminal commit also cancels the run-level timer;
- ``started_at`` missing → durations of 0 instead of a planning error;
- the residue purge is scoped to the finished run, and parent notification names the parent run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from grctl.engine.snapshot import PlanConfig, Snapshot
from grctl.engine.writes import (
    BgRec,
    DirectiveRec,
    ErrorRec,
    HistoryRec,
    InfoRec,
    OutputRec,
    Record,
    RetentionRec,
    StateRec,
    TaskRec,
    TimerRec,
    ms_between,
    timer_subject,
)
from grctl.models.common import ErrorDetails, RunInfo, RunStatus
from grctl.models.directive import (
    ActiveTask,
    Directive,
    DirectiveKind,
    Event,
    Start,
    Step,
    StepTimeoutFired,
    Wait,
    WakeFromInbox,
)
from grctl.models.history import (
    HistoryEvent,
    HistoryKind,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunTerminated,
    RunTimeout,
    WaitStarted,
)
from grctl.models.records import (
    BgTaskKind,
    NotifyParentComplete,
    PurgeRunResidue,
    RunState,
    RunStateKind,
    Timer,
    TimerKind,
    WorkerTerminateRun,
)

replace = msgspec.structs.replace


class PlanError(Exception):
    """The directive cannot be applied (bad message, unknown kind...): the run is failed instead."""


@dataclass(frozen=True, slots=True)
class Ctx:
    """Everything a transition may look at: the snapshot, the planning clock and the defaults."""

    snap: Snapshot
    now: datetime
    config: PlanConfig

    @property
    def state(self) -> RunState | None:
        return self.snap.state

    @property
    def dispatch_seq(self) -> int:
        """The replay window start of a task dispatched now (our rule: every dispatch gets its own,
        docs/protocol.md#a-replay-window-for-every-dispatch)."""
        return self.snap.last_history_seq + 1

    def history(self, kind: HistoryKind, msg: msgspec.Struct, ts: datetime,
                worker_id: str = "") -> HistoryRec:
        event = HistoryEvent(wf_id=self.snap.wf_id, run_id=self.snap.run_id, worker_id=worker_id,
                             timestamp=ts, kind=kind, msg=msg)
        return HistoryRec(event)

    def base_state(self) -> RunState:
        """The current run state, or a fresh one when the run has none yet."""
        if self.state is not None:
            return self.state
        return RunState(wf_id=self.snap.wf_id, run_id=self.snap.run_id, kind=RunStateKind.idle,
                        entered_at=self.now, last_event_seq_id=0)

    def write_state(self, new: RunState, cancel_active: bool = True) -> StateRec:
        """The run-state record with the compare-and-swap on the snapshot's sequence (0 = must not exist),
        cancelling the timer of the dispatch the run is leaving."""
        cancel = ""
        if cancel_active and self.snap.active_timer_id:
            cancel = timer_subject(self.snap.wf_id, self.snap.active_timer_id)
        return StateRec(new, expected_seq=self.snap.state_seq, cancel_timer=cancel)

    def started_at(self, ri: RunInfo) -> datetime | None:
        if ri.started_at is not None:
            return ri.started_at
        return self.state.started_at if self.state is not None else None


def _ms(value: int | None) -> int:
    return int(value or 0)


def _later(now: datetime, ms: int, default: timedelta) -> datetime:
    return now + (timedelta(milliseconds=ms) if ms > 0 else default)


def step_name_of(d: Directive) -> str:
    """The wire name of the step a worker task runs: "start", the step name, or the event name."""
    if not isinstance(d.msg, Start | Step | Event):
        raise PlanError(f"a {d.kind} directive cannot be dispatched to a worker")
    return d.step_name


def step_timer(ctx: Ctx, d: Directive, name: str, timeout_ms: int) -> TimerRec:
    timer_id = f"{TimerKind.step_timeout}.{d.id}"
    return TimerRec(Timer(id=timer_id, k=TimerKind.step_timeout, wfid=ctx.snap.wf_id, created=ctx.now,
                          expires=_later(ctx.now, timeout_ms, ctx.config.step_timeout), d=d.to_wire(),
                          step=name))


def step_start(ctx: Ctx, d: Directive) -> list[Record]:
    """T4: dispatch ``d`` (a ``step`` or inbox ``event`` directive) as a worker task with its timer."""
    name = step_name_of(d)
    hs = ctx.dispatch_seq
    ri = replace(d.run_info, status=RunStatus.running, history_seq_id=hs,
                 started_at=ctx.started_at(d.run_info), stuck=None)
    task = replace(d, run_info=ri)
    timer = step_timer(ctx, task, name, _ms(getattr(d.msg, "timeout_ms", 0)))
    base = ctx.base_state()
    last_event = base.last_event_seq_id
    if isinstance(d.msg, Event) and d.msg.event_seq_id:
        last_event = d.msg.event_seq_id
    state = replace(base, kind=RunStateKind.step, entered_at=ctx.now, last_event_seq_id=last_event,
                    started_at=base.started_at or ri.started_at, active_directive_id=task.id,
                    pending_cancel=None, active_step_name=name, active_history_seq_id=hs,
                    active_timer_id=timer.timer.id, worker_id=None, picked_up_at=None,
                    active_task=ActiveTask.of(task), held="")
    return [timer, InfoRec(ri), TaskRec(task), ctx.write_state(state)]


def wait(ctx: Ctx, w: Directive) -> list[Record]:
    """T5: park the run; arm the wait timer; wake at once when an inbox event is already pending."""
    msg = w.msg
    if not isinstance(msg, Wait):
        raise PlanError(f"expected a wait message, got {type(msg).__name__}")
    ri = replace(w.run_info, status=RunStatus.running, stuck=None)
    timeout_ms = _ms(msg.timeout_ms)
    step_on_timeout = msg.timeout_step_name or ""
    timer_id = f"{TimerKind.wait_timeout}.{w.id}"
    timer = Timer(id=timer_id, k=TimerKind.wait_timeout, wfid=ctx.snap.wf_id, created=ctx.now,
                  expires=_later(ctx.now, timeout_ms, ctx.config.wait_timeout), d=w.to_wire(),
                  step=step_on_timeout)
    base = ctx.base_state()
    state = replace(base, kind=RunStateKind.wait, entered_at=ctx.now, active_directive_id=w.id,
                    pending_cancel=None, active_step_name="", active_history_seq_id=0,
                    active_timer_id=timer_id, active_task=ActiveTask.of(w), held="")
    records: list[Record] = [
        InfoRec(ri),
        ctx.history(HistoryKind.wait_started,
                    WaitStarted(directive_id=w.id, timeout_ms=timeout_ms, timeout_step_name=step_on_timeout),
                    ctx.now),
        TimerRec(timer),
        ctx.write_state(state),
    ]
    if ctx.snap.next_event is not None:
        records.append(wake_directive(ctx, w.id, w.run_info))
    return records


def wake_directive(ctx: Ctx, origin_id: str, ri: RunInfo) -> DirectiveRec:
    return DirectiveRec(Directive(id=f"next.{origin_id}", timestamp=ctx.now,
                                  kind=DirectiveKind.wake_from_inbox, run_info=ri, msg=WakeFromInbox()))


# --- terminal transitions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run ends: what the terminal commit writes besides the common records."""

    status: RunStatus
    state_kind: RunStateKind
    history: HistoryRec
    notify_error: ErrorDetails | None = None
    result: Any = None
    error: ErrorDetails | None = None
    terminate_worker: bool = False


def finish(ctx: Ctx, origin: Directive, ri: RunInfo, completed_at: datetime, ending: Ending) -> list[Record]:
    """The records every terminal commit shares: run info, terminal history event, run state, then the
    output or error record, the worker cancel, the parent notification, the inbox purge (only when
    events reached it) and the run's removal once its retention has passed.

    The run's directives, tasks and fired timers are not purged one run at a time: the engine sweeps
    everything its consumers have acknowledged in a few purges per interval (``engine.sweep``)."""
    info = replace(ri, status=ending.status, completed_at=completed_at, started_at=ctx.started_at(ri),
                   stuck=None)
    # The run-level timer is cancelled in this commit when the run has one.
    cancel_run_timer = timer_subject(ctx.snap.wf_id, ctx.snap.run_timer_id) if ri.timeout_seconds else ""
    base = ctx.base_state()
    # ``active_task`` stays: it is where a retry of the run resumes, and what describe says it ended in.
    state = replace(base, kind=ending.state_kind, entered_at=ctx.now, active_directive_id="",
                    pending_cancel=None, active_step_name="", active_history_seq_id=0, active_timer_id="",
                    held="")
    records: list[Record] = [InfoRec(info, cancel_timer=cancel_run_timer), ending.history,
                             ctx.write_state(state)]
    if ending.result is not None:
        records.append(OutputRec(ctx.snap.wf_id, ctx.snap.run_id, ending.result))
    if ending.error is not None:
        records.append(ErrorRec(ctx.snap.wf_id, ctx.snap.run_id, ending.error))
    worker_id = base.worker_id
    if ending.terminate_worker and worker_id:
        records.append(_bg(BgTaskKind.worker_terminate_run, origin,
                           WorkerTerminateRun(worker_id=worker_id, run_id=ctx.snap.run_id)))
    if ri.parent_wf_id and ri.parent_callback_step:
        notify = NotifyParentComplete(
            parent_wf_id=ri.parent_wf_id, step_name=ri.parent_callback_step, child_wf_id=ri.wf_id,
            status=ending.status, result=ending.result, error=ending.notify_error,
            parent_run_id=ri.parent_run_id or "", parent_wf_type=ri.parent_wf_type or "")
        records.append(_bg(BgTaskKind.notify_parent_complete, origin, notify))
    if base.inbox_used:
        purge = PurgeRunResidue(wf_id=ctx.snap.wf_id, run_id=ctx.snap.run_id)
        records.append(_bg(BgTaskKind.purge_run_residue, origin, purge))
    if ctx.config.retention is not None:
        records.append(RetentionRec(ri.wf_type, ctx.snap.wf_id, ctx.snap.run_id,
                                    ctx.now + ctx.config.retention))
    return records


def _bg(kind: BgTaskKind, origin: Directive, payload: msgspec.Struct) -> BgRec:
    """A background task, deduplicated by its kind and the directive that caused it."""
    return BgRec(kind, f"bg.{kind}.{origin.id}", payload)


def complete_run(ctx: Ctx, c: Directive, result: Any) -> list[Record]:
    """T6: the run completed with ``result``."""
    ts = c.timestamp
    duration = ms_between(ctx.started_at(c.run_info), ts)
    ending = Ending(RunStatus.completed, RunStateKind.complete,
                    ctx.history(HistoryKind.run_completed, RunCompleted(result=result, duration_ms=duration),
                                ts),
                    result=result)
    return finish(ctx, c, c.run_info, ts, ending)


def fail_run(ctx: Ctx, f: Directive, error: ErrorDetails, terminate_worker: bool = True) -> list[Record]:
    """T10: the run failed with ``error``; the last-known worker is told to stop unless it reported the
    failure itself."""
    ts = f.timestamp
    duration = ms_between(ctx.started_at(f.run_info), ts)
    ending = Ending(RunStatus.failed, RunStateKind.fail,
                    ctx.history(HistoryKind.run_failed, RunFailed(error=error, duration_ms=duration), ts),
                    notify_error=error, error=error, terminate_worker=terminate_worker)
    return finish(ctx, f, f.run_info, ts, ending)


def cancel_run(ctx: Ctx, x: Directive, reason: str) -> list[Record]:
    """T9: the run is cancelled (``x`` is the cancel directive, possibly the pending one)."""
    error = ErrorDetails(type="Cancelled", message=reason or "workflow was cancelled")
    return _end_on_request(ctx, x, RunStatus.cancelled, RunStateKind.cancel, HistoryKind.run_cancelled,
                           RunCancelled, error, reason, terminate_worker=False)


def terminate_run(ctx: Ctx, x: Directive, reason: str) -> list[Record]:
    """T8: the run is terminated at once; the last-known worker is told to stop."""
    error = ErrorDetails(type="Terminated", message=reason or "run was terminated")
    return _end_on_request(ctx, x, RunStatus.terminated, RunStateKind.terminate, HistoryKind.run_terminated,
                           RunTerminated, error, reason, terminate_worker=True)


def _end_on_request(ctx: Ctx, x: Directive, status: RunStatus, state: RunStateKind, kind: HistoryKind,
                    event: type[RunCancelled] | type[RunTerminated], error: ErrorDetails, reason: str,
                    terminate_worker: bool) -> list[Record]:
    """A run ended because someone asked (cancel, terminate): its event says why and how long it ran."""
    ts = x.timestamp
    duration = ms_between(ctx.started_at(x.run_info), ts)
    ending = Ending(status, state, ctx.history(kind, event(reason=reason, duration_ms=duration), ts),
                    notify_error=error, terminate_worker=terminate_worker)
    return finish(ctx, x, x.run_info, ts, ending)


def extended_deadline(ctx: Ctx, msg: StepTimeoutFired) -> datetime | None:
    """Ours: when a step whose timer fired really runs out of time, if that is later than now; None when
    it has run out. A step's time is the time a worker runs it while the engine watches:

    - not yet taken by any worker (queued behind other work under load): it keeps waiting for one, and
      its timer is armed again for its whole timeout;
    - taken after its timer was armed: its timeout counts from the pick-up;
    - its deadline passed while this engine could not watch it (not running, or not connected to NATS,
      at some moment since the timer was armed): ``max(deadline, watched_since) + recovery_grace``, the
      time a worker may need to reconnect and report, or to receive its task again.

    Timers of an older kind (without their window) are never extended."""
    if msg.armed_at is None or msg.deadline is None or msg.armed_by is None:
        return None
    state = ctx.state
    assert state is not None
    window = msg.deadline - msg.armed_at
    if window <= timedelta(0):  # a timer with no window of its own: the default step timeout
        window = ctx.config.step_timeout
    candidates = []
    since = ctx.snap.watched_since
    if since is not None and since > msg.armed_at:
        candidates.append(max(msg.deadline, since) + ctx.config.recovery_grace)
    if state.picked_up_at is None and not state.worker_id:
        candidates.append(ctx.now + window)
    elif state.picked_up_at is not None and state.picked_up_at > msg.armed_at:
        candidates.append(state.picked_up_at + window)
    later = [c for c in candidates if c > ctx.now]
    return max(later) if later else None


def rearm_step_timer(ctx: Ctx, msg: StepTimeoutFired, expires: datetime,
                     state: RunState | None = None) -> list[Record]:
    """The step's timer again (same schedule subject: it replaces the fired one), until ``expires``; the
    run state (unchanged unless ``state`` is given) is rewritten with its CAS, so a result committed
    meanwhile wins."""
    state = state or ctx.state
    assert state is not None and msg.armed_by is not None
    timer = Timer(id=ctx.snap.active_timer_id, k=TimerKind.step_timeout, wfid=ctx.snap.wf_id, created=ctx.now,
                  expires=expires, d=msg.armed_by, step=msg.step_name)
    return [TimerRec(timer), ctx.write_state(state, cancel_active=False)]


def belongs(state: RunState, history_seq_id: int, step_name: str) -> bool:
    """Does a worker report (echoing the task's RunInfo) belong to the active dispatch?"""
    if state.kind != RunStateKind.step:
        return False
    if state.active_history_seq_id and history_seq_id != state.active_history_seq_id:
        return False
    return not state.active_step_name or step_name == state.active_step_name


def timeout_run(ctx: Ctx, x: Directive) -> list[Record]:
    """Ours: the run-level timeout expired; status ``timed_out``, history ``run.timeout``."""
    ri = x.run_info
    duration = ms_between(ctx.started_at(ri), ctx.now)
    seconds = ri.timeout_seconds or duration / 1000
    error = ErrorDetails(type="RunTimeout", message=f"workflow timed out after {seconds:g}s")
    ending = Ending(RunStatus.timed_out, RunStateKind.fail,
                    ctx.history(HistoryKind.run_timeout, RunTimeout(duration_ms=duration), ctx.now),
                    notify_error=error, error=error,
                    terminate_worker=ctx.state is not None and ctx.state.kind == RunStateKind.step)
    return finish(ctx, x, ri, ctx.now, ending)
