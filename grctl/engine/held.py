"""Transitions for code that does not fit a run (docs/operations.md#deploying-new-code): a step held by
its worker, a step no worker takes, and the retry of an ended run. Pure, like ``plan``.

A run whose step its worker cannot run (the handler is missing, or its parameters no longer bind the
stored payload) is not failed: the worker hands the task back with a growing delay and reports
``step_held`` once; the run is marked stuck (``RunInfo.stuck``) until a worker with the handler picks
the step up (``plan._picked_up`` clears the mark). The step's timeout does not count meanwhile (the
step is not running: ``extended_deadline`` keeps arming its timer); the run's own timeout does.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import msgspec

from grctl.engine.transitions import (
    Ctx,
    PlanError,
    belongs,
    rearm_step_timer,
    step_name_of,
    step_start,
    wait,
)
from grctl.engine.writes import InfoRec, InputRec, Record, StateRec, TimerRec
from grctl.models.common import RunInfo, RunStatus, Stuck, StuckReason
from grctl.models.directive import Directive, DirectiveKind, Resume, Start, StepHeld, StepTimeoutFired, Wait
from grctl.models.history import HistoryKind, RunStarted
from grctl.models.records import RunState, RunStateKind, Timer, TimerKind

replace = msgspec.structs.replace


def held_key(reason: str, handler: str) -> str:
    """What ``RunState.held`` keeps: one stuck report per reason and handler, however often it is said."""
    return f"{reason}:{handler}"


def _mark(ctx: Ctx, d: Directive, state: RunState, stuck: Stuck) -> list[Record]:
    """The run info with its stuck mark, and the run state that remembers it was reported."""
    held = replace(state, held=held_key(stuck.reason, stuck.handler), worker_id=None, picked_up_at=None)
    return [InfoRec(replace(d.run_info, stuck=stuck)), ctx.write_state(held, cancel_active=False)]


def step_held(ctx: Ctx, d: Directive) -> list[Record]:
    """A worker cannot run the active step with its code: mark the run stuck (once per reason and
    handler). The step counts as not taken, so its timeout waits for a worker that can run it."""
    msg = d.msg
    if not isinstance(msg, StepHeld):
        raise PlanError(f"a step_held directive carries a {type(msg).__name__} message")
    state = ctx.state
    if state is None or not belongs(state, d.run_info.history_seq_id, msg.step_name):
        return []
    if state.held == held_key(msg.reason, msg.step_name):
        return []  # said before (a redelivery, another worker with the same code)
    stuck = Stuck(reason=msg.reason, handler=msg.step_name, since=ctx.now, worker_id=msg.worker_id,
                  detail=msg.detail)
    return _mark(ctx, d, state, stuck)


def not_taken(ctx: Ctx, d: Directive, msg: StepTimeoutFired, later: datetime) -> list[Record]:
    """The step timer fired for a step that no worker has taken: its timer is armed again (the step
    waits for a worker) and, the first time, the run is marked stuck with ``no_worker``. [] when the
    step was taken or the run is already marked."""
    state = ctx.state
    if state is None or state.held or state.worker_id or state.picked_up_at is not None:
        return []
    waited = int((ctx.now - state.entered_at).total_seconds())
    stuck = Stuck(reason=StuckReason.no_worker, handler=msg.step_name, since=ctx.now,
                  detail=f"no worker has taken the step for {waited} s: is workflow type "
                         f"{d.run_info.wf_type!r} served by a worker that has this handler?")
    marked = _mark(ctx, d, state, stuck)
    held_state = marked[1]
    assert isinstance(held_state, StateRec)
    return [marked[0], *rearm_step_timer(ctx, msg, later, held_state.state)]


def newly_stuck(records: list[Record]) -> RunInfo | None:
    """The run info of a commit that marks its run stuck (for the engine's one log line per run)."""
    for r in records:
        if isinstance(r, InfoRec) and r.info.stuck is not None:
            return r.info
    return None


def resume(ctx: Ctx, d: Directive) -> list[Record]:
    """Ours: a new run, the retry of an ended one, starting at the task (or wait) that run ended in,
    with its input. The API wrote its store beforehand (as it was when that task was dispatched)."""
    if ctx.state is not None:
        return []  # resumed before (a redelivery)
    msg = d.msg
    if not isinstance(msg, Resume):
        raise PlanError(f"a resume directive carries a {type(msg).__name__} message")
    now = ctx.now
    ri = replace(d.run_info, status=RunStatus.running, started_at=now, stuck=None)
    try:
        task = msg.task.directive(f"resume.{d.id}", now, ri)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PlanError(f"undecodable task to resume: {exc}") from exc
    if isinstance(task.msg, Start) and task.msg.input is None:  # kept without it (see plan._start)
        task = replace(task, msg=replace(task.msg, input=msg.input))
    at = "wait" if isinstance(task.msg, Wait) else _task_name(task)
    started = ctx.history(HistoryKind.run_started,
                          RunStarted(input=msg.input, retry_of=msg.retry_of, resumed_at=at), now)
    entered = RunState(wf_id=ctx.snap.wf_id, run_id=ctx.snap.run_id, kind=RunStateKind.start, entered_at=now,
                       last_event_seq_id=msg.last_event_seq_id, started_at=now)
    records: list[Record] = [started, InfoRec(ri)]
    if msg.input is not None:
        records.append(InputRec(ctx.snap.wf_id, ctx.snap.run_id, msg.input))
    records.append(StateRec(entered, expected_seq=0))
    seconds = ri.timeout_seconds
    if seconds:
        records.append(TimerRec(Timer(id=ctx.snap.run_timer_id, k=TimerKind.run_timeout, wfid=ctx.snap.wf_id,
                                      created=now, expires=now + timedelta(seconds=seconds),
                                      d=task.to_wire())))
    inner = Ctx(dataclasses.replace(ctx.snap, state=entered, next_event=None), now, ctx.config)
    following = wait(inner, task) if isinstance(task.msg, Wait) else step_start(inner, task)
    # The state record above carries the compare-and-swap; the second write of it in this batch does not.
    return records + [dataclasses.replace(r, expected_seq=None) if isinstance(r, StateRec) else r
                      for r in following]


def _task_name(task: Directive) -> str:
    if task.kind not in (DirectiveKind.start, DirectiveKind.step, DirectiveKind.event):
        raise PlanError(f"a run cannot resume at a {task.kind} directive")
    return step_name_of(task)
