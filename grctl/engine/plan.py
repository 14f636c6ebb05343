"""The engine's state machine as a pure function: (snapshot, directive, now, config) → records.

``plan`` implements every transition of docs/protocol.md#transitions (T1–T15) plus our decisions
(docs/protocol.md#beyond-the-public-protocol): a terminal run ignores everything; a redelivered
``start`` never dispatches twice; a ``step_result`` or ``step_picked_up`` that does not belong to the
active dispatch, and a stale step or wait timeout, plan nothing (the caller acks an empty plan as a
no-op). Anything else that cannot be applied raises ``PlanError``; the caller then plans
``plan_failure`` (the run fails with ``UnexpectedFailure``). No I/O, no clock, no randomness: derived
ids only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec

from grctl.engine.held import not_taken, resume, step_held
from grctl.engine.snapshot import PlanConfig, Snapshot
from grctl.engine.transitions import (
    Ctx,
    PlanError,
    belongs,
    cancel_run,
    complete_run,
    extended_deadline,
    fail_run,
    rearm_step_timer,
    step_start,
    step_timer,
    terminate_run,
    timeout_run,
    wait,
    wake_directive,
)
from grctl.engine.writes import (
    InboxRec,
    InfoRec,
    InputRec,
    KVRec,
    Record,
    StateRec,
    TaskRec,
    TimerRec,
    ms_between,
)
from grctl.models.common import ErrorDetails, RunStatus
from grctl.models.directive import (
    ActiveTask,
    Cancel,
    Complete,
    Directive,
    DirectiveKind,
    Event,
    Fail,
    FailStep,
    Start,
    Step,
    StepPickedUp,
    StepResult,
    StepTimeoutFired,
    Terminate,
    WaitTimeout,
)
from grctl.models.history import (
    EventReceived,
    HistoryKind,
    RunCancelReceived,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepStarted,
    StepTimedOut,
    WaitTimedOut,
)
from grctl.models.records import RunState, RunStateKind, Timer, TimerKind
from grctl.nats.subjects import invalid_token_reason

__all__ = ["PlanConfig", "PlanError", "Snapshot", "plan", "plan_failure"]

replace = msgspec.structs.replace


def plan(snap: Snapshot, d: Directive, now: datetime, config: PlanConfig | None = None) -> list[Record]:
    """The records that apply ``d`` to the run in ``snap``, in commit order; [] means nothing to do."""
    if snap.is_terminal:
        return []  # a finished run ignores every directive
    handler = _HANDLERS.get(d.kind)
    if handler is None:
        raise PlanError(f"directive kind {d.kind} cannot be processed")
    return handler(Ctx(snap, now, config or PlanConfig()), d)


def plan_failure(snap: Snapshot, d: Directive, cause: str, now: datetime,
                 config: PlanConfig | None = None) -> list[Record]:
    """Fail the run because ``d`` could not be applied (docs/protocol.md#directive-processing); nothing
    when there is no live run."""
    if snap.state is None or snap.is_terminal:
        return []
    error = ErrorDetails(
        type="UnexpectedFailure",
        message=f"An unexpected error occurred while processing directive {d.id} of kind {d.kind}: {cause}",
    )
    f = Directive(id=f"unexpected.{d.id}", timestamp=now, kind=DirectiveKind.fail, run_info=d.run_info,
                  msg=Fail(error=error))
    return fail_run(Ctx(snap, now, config or PlanConfig()), f, error)


_T = TypeVar("_T")


def _msg(d: Directive, kind: type[_T]) -> _T:
    if not isinstance(d.msg, kind):
        raise PlanError(f"a {d.kind} directive carries a {type(d.msg).__name__} message")
    return d.msg


# --- T1 ------------------------------------------------------------------------------------------


def _start(ctx: Ctx, d: Directive) -> list[Record]:
    """T1: start the run and dispatch its start step. Only when the run has no state yet, so a
    redelivered start is a no-op; the first run-state record carries CAS 0 for a concurrent one."""
    if ctx.state is not None:
        return []
    msg = _msg(d, Start)
    now = ctx.now
    created = d.run_info.created_at if d.run_info.created_at.year > 1 else now
    ri = replace(d.run_info, status=RunStatus.running, started_at=now, created_at=created)
    task = replace(d, run_info=replace(ri, history_seq_id=ctx.dispatch_seq))
    timer = step_timer(ctx, task, "start", int(msg.timeout_ms or 0))
    entered = RunState(wf_id=ctx.snap.wf_id, run_id=ctx.snap.run_id, kind=RunStateKind.start, entered_at=now,
                       last_event_seq_id=ctx.snap.inbox_last_seq, started_at=now)
    # The kept start task leaves out the input (it has a record of its own): run states stay small.
    stepping = replace(entered, kind=RunStateKind.step, active_directive_id=d.id, active_step_name="start",
                       active_history_seq_id=ctx.dispatch_seq, active_timer_id=timer.timer.id,
                       active_task=ActiveTask.of(replace(task, msg=replace(msg, input=None))))
    started = ctx.history(HistoryKind.run_started, RunStarted(input=msg.input), now)
    records: list[Record] = [started, InfoRec(ri)]
    if msg.input is not None:
        records.append(InputRec(ctx.snap.wf_id, ctx.snap.run_id, msg.input))
    records += [StateRec(entered, expected_seq=0), timer]
    seconds = ri.timeout_seconds
    if seconds:
        records.append(TimerRec(Timer(id=ctx.snap.run_timer_id, k=TimerKind.run_timeout, wfid=ctx.snap.wf_id,
                                      created=now, expires=now + timedelta(seconds=seconds),
                                      d=task.to_wire())))
    records += [InfoRec(task.run_info), TaskRec(task), StateRec(stepping, expected_seq=None)]
    return records


# --- T2, T3 --------------------------------------------------------------------------------------


def _picked_up(ctx: Ctx, d: Directive) -> list[Record]:
    """T2: a worker started the active step."""
    msg = _msg(d, StepPickedUp)
    state = ctx.state
    if state is None or not belongs(state, d.run_info.history_seq_id, msg.step_name):
        return []
    records: list[Record] = [
        ctx.history(HistoryKind.step_started, StepStarted(step_name=msg.step_name, worker_id=msg.worker_id),
                    msg.timestamp, worker_id=msg.worker_id),
        ctx.write_state(replace(state, worker_id=msg.worker_id, picked_up_at=ctx.now, held=""),
                        cancel_active=False),
    ]
    if state.held:  # a worker with the handler took the step: the run is no longer stuck
        records.append(InfoRec(replace(d.run_info, stuck=None)))
    return records


def _kv_records(ctx: Ctx, updates: dict[str, object] | None) -> list[Record]:
    records: list[Record] = []
    for key, value in (updates or {}).items():
        reason = invalid_token_reason(key)
        if reason:
            raise PlanError(f"store key {key!r} {reason}")
        records.append(KVRec(ctx.snap.wf_id, ctx.snap.run_id, key, value))
    return records


def _step_result(ctx: Ctx, d: Directive) -> list[Record]:
    """T3: the active step finished; write its store updates and history, then go where it asked."""
    msg = _msg(d, StepResult)
    state = ctx.state
    try:
        finished = msg.processed_step_name
        nxt = msg.next()
    except (ValueError, msgspec.ValidationError) as exc:
        if state is None or state.kind != RunStateKind.step:
            return []
        raise PlanError(f"bad step result: {exc}") from exc
    if state is None or not belongs(state, d.run_info.history_seq_id, finished):
        return []
    worker_id = msg.worker_id or ""
    n = Directive(id=f"next.{d.id}", timestamp=ctx.now, kind=DirectiveKind(msg.next_msg_kind),
                  run_info=replace(d.run_info, history_seq_id=ctx.dispatch_seq), msg=nxt)
    if isinstance(nxt, FailStep):
        # Ours: a failed step's store writes are not applied, so a retry finds the store as it was
        # when the step started (docs/protocol.md#a-failed-steps-store-writes).
        failed = StepFailed(step_name=finished, error=nxt.error, duration_ms=msg.duration_ms)
        f = replace(n, kind=DirectiveKind.fail, msg=Fail(error=nxt.error))
        return [ctx.history(HistoryKind.step_failed, failed, ctx.now),
                *fail_run(ctx, f, nxt.error, terminate_worker=False)]
    records = _kv_records(ctx, msg.kv_updates)
    completed = StepCompleted(step_name=finished, worker_id=worker_id, duration_ms=msg.duration_ms)
    records.append(ctx.history(HistoryKind.step_completed, completed, ctx.now, worker_id=worker_id))
    if state.pending_cancel is not None:
        pending = _pending_cancel(state)
        return records + cancel_run(ctx, pending, _msg(pending, Cancel).reason or "")
    if isinstance(nxt, Step):
        return records + step_start(ctx, n)
    if isinstance(nxt, Complete):
        return records + complete_run(ctx, n, nxt.result)
    if isinstance(nxt, Fail):
        return records + fail_run(ctx, n, nxt.error, terminate_worker=False)
    return records + wait(ctx, n)


def _pending_cancel(state: RunState) -> Directive:
    try:
        return Directive.from_wire(state.pending_cancel)  # type: ignore[arg-type]
    except (ValueError, msgspec.DecodeError) as exc:
        raise PlanError(f"undecodable pending cancel: {exc}") from exc


# --- T7, T8, T11, T12 ----------------------------------------------------------------------------


def _cancel(ctx: Ctx, d: Directive) -> list[Record]:
    """T7: during a step the cancel is deferred until the step reports; otherwise (ours: also when the
    step is held, so not running anywhere) it ends the run."""
    reason = _msg(d, Cancel).reason or ""
    state = ctx.state
    if state is not None and state.kind == RunStateKind.step and not state.held:
        return [
            ctx.history(HistoryKind.run_cancel_received, RunCancelReceived(), d.timestamp),
            ctx.write_state(replace(state, pending_cancel=d.to_wire()), cancel_active=False),
        ]
    return cancel_run(ctx, d, reason)


def _terminate(ctx: Ctx, d: Directive) -> list[Record]:
    """T8."""
    return terminate_run(ctx, d, _msg(d, Terminate).reason or "")


def _event(ctx: Ctx, d: Directive) -> list[Record]:
    """T11: append to the inbox and record it at once; wake a waiting run whose inbox was empty.
    Ours: the unchanged run state is rewritten with CAS so two engines cannot strand the event."""
    msg = _msg(d, Event)
    records: list[Record] = [
        InboxRec(d),
        ctx.history(HistoryKind.event_received, EventReceived(event_name=msg.event_name, payload=msg.payload),
                    ctx.now),
    ]
    state = ctx.state
    if state is not None:
        records.append(ctx.write_state(replace(state, inbox_used=True), cancel_active=False))
        if state.kind == RunStateKind.wait and ctx.snap.next_event is None:
            records.append(wake_directive(ctx, d.id, d.run_info))
    return records


def _wake(ctx: Ctx, d: Directive) -> list[Record]:
    """T12: a waiting run takes the oldest undelivered inbox event as its next step."""
    event = ctx.snap.next_event
    if ctx.state is None or ctx.state.kind != RunStateKind.wait or event is None:
        return []
    return step_start(ctx, event)


# --- T13, T14, run timeout -----------------------------------------------------------------------


def _is_active(state: RunState | None, kind: RunStateKind, directive_id: str) -> bool:
    """Is the run in ``kind`` for the dispatch ``directive_id``? (Otherwise a timer is stale.)"""
    return state is not None and state.kind == kind and state.active_directive_id == directive_id


def _step_timeout(ctx: Ctx, d: Directive) -> list[Record]:
    """T13: the active step ran out of time; a timer for any other dispatch is stale (no-op).

    Ours, so that an outage or a queue costs time and not the run: a result the worker reported before
    the deadline (still waiting to be applied) is applied instead; a step that did not yet get its time
    (queued, picked up late, or not watched by this engine) has its timer armed again
    (``extended_deadline``)."""
    msg = _msg(d, StepTimeoutFired)
    state = ctx.state
    if not _is_active(state, RunStateKind.step, msg.original_directive_id):
        return []
    assert state is not None
    if ctx.snap.reported_result is not None:
        return _step_result(ctx, ctx.snap.reported_result)
    later = extended_deadline(ctx, msg)
    if later is not None:
        return not_taken(ctx, d, msg, later) or rearm_step_timer(ctx, msg, later)
    error = ErrorDetails(type="StepTimeout", message=f"step {msg.step_name} timed out")
    f = Directive(id=f"fail.{d.id}", timestamp=ctx.now, kind=DirectiveKind.fail, run_info=d.run_info,
                  msg=Fail(error=error))
    took = ms_between(state.entered_at, ctx.now)
    timed_out = ctx.history(HistoryKind.step_timeout, StepTimedOut(step_name=msg.step_name, duration_ms=took),
                            ctx.now)
    return [timed_out, *fail_run(ctx, f, error)]


def _wait_timeout(ctx: Ctx, d: Directive) -> list[Record]:
    """T14: the active wait ran out of time: run the timeout step, or fail. Stale timers are no-ops."""
    msg = _msg(d, WaitTimeout)
    state = ctx.state
    if not _is_active(state, RunStateKind.wait, msg.original_directive_id):
        return []
    timed_out = WaitTimedOut(original_directive_id=msg.original_directive_id,
                             timeout_step_name=msg.timeout_step_name)
    records: list[Record] = [ctx.history(HistoryKind.wait_timed_out, timed_out, ctx.now)]
    if msg.timeout_step_name:
        step = Directive(id=f"next.{d.id}", timestamp=ctx.now, kind=DirectiveKind.step, run_info=d.run_info,
                         msg=Step(step_name=msg.timeout_step_name, timeout_ms=0))
        return records + step_start(ctx, step)
    error = ErrorDetails(type="WaitTimeout", message="wait timed out without a timeout step")
    f = Directive(id=f"fail.{d.id}", timestamp=ctx.now, kind=DirectiveKind.fail, run_info=d.run_info,
                  msg=Fail(error=error))
    return records + fail_run(ctx, f, error)


def _run_timeout(ctx: Ctx, d: Directive) -> list[Record]:
    """Ours: the run-level timeout fired while the run was still going."""
    if ctx.state is None:
        return []
    return timeout_run(ctx, d)


# --- T15 -----------------------------------------------------------------------------------------


def _direct_step(ctx: Ctx, d: Directive) -> list[Record]:
    return step_start(ctx, d)


def _direct_wait(ctx: Ctx, d: Directive) -> list[Record]:
    return wait(ctx, d)


def _direct_complete(ctx: Ctx, d: Directive) -> list[Record]:
    return complete_run(ctx, d, _msg(d, Complete).result)


def _direct_fail(ctx: Ctx, d: Directive) -> list[Record]:
    return fail_run(ctx, d, _msg(d, Fail).error)


_HANDLERS: dict[DirectiveKind, Callable[[Ctx, Directive], list[Record]]] = {
    DirectiveKind.start: _start,
    DirectiveKind.step_picked_up: _picked_up,
    DirectiveKind.step_result: _step_result,
    DirectiveKind.cancel: _cancel,
    DirectiveKind.terminate: _terminate,
    DirectiveKind.event: _event,
    DirectiveKind.wake_from_inbox: _wake,
    DirectiveKind.step_timeout: _step_timeout,
    DirectiveKind.wait_timeout: _wait_timeout,
    DirectiveKind.run_timeout: _run_timeout,
    DirectiveKind.step: _direct_step,
    DirectiveKind.wait: _direct_wait,
    DirectiveKind.complete: _direct_complete,
    DirectiveKind.fail: _direct_fail,
    DirectiveKind.step_held: step_held,
    DirectiveKind.resume: resume,
}
