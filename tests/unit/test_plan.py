"""plan(): start, pick-up, cancel, terminate, events and wake-ups, the terminal guard
(docs/protocol.md#transitions)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from support.plan import (
    CONFIG,
    NOW,
    RUN,
    STEP_SEQ,
    WF,
    bg,
    bg_payload,
    directive,
    final_info,
    final_state,
    history,
    history_msg,
    inbox_event,
    kinds,
    of,
    run,
    run_info,
    running_info,
    snap,
    state,
    stepping,
    task,
    timers,
    waiting,
)

from grctl.engine.plan import PlanError, plan, plan_failure
from grctl.engine.writes import (
    DirectiveRec,
    InboxRec,
    InputRec,
    RetentionRec,
    StateRec,
    TimerRec,
    timer_subject,
)
from grctl.models.common import RunStatus
from grctl.models.directive import (
    Cancel,
    Complete,
    Directive,
    DirectiveKind,
    Event,
    Fail,
    Start,
    StepPickedUp,
    StepTimeoutFired,
    Terminate,
    WaitTimeout,
    WakeFromInbox,
)
from grctl.models.history import HistoryKind
from grctl.models.records import BgTaskKind, RunStateKind, TimerKind


def start_directive(**ri) -> Directive:
    return directive(DirectiveKind.start, Start(input={"value": "ok"}, timeout_ms=300000), id="D1",
                     r=run_info(**ri))


# --- T1 ------------------------------------------------------------------------------------------


def test_start_batch_layout() -> None:
    records = run(snap(last_history=0), start_directive())
    assert kinds(records) == ["H:run.started", "INFO", "INPUT", "STATE:start", "TIMER:step_timeout", "INFO",
                              "TASK", "STATE:step"]
    assert history_msg(records, HistoryKind.run_started).input == {"value": "ok"}
    first, second = of(records, StateRec)
    assert first.expected_seq == 0, "the first run-state write requires that none exists"
    assert second.expected_seq is None, "a second CAS on the same subject in one batch fails with 10164"
    t = task(records)
    assert t.id == "D1" and t.kind == DirectiveKind.start
    assert t.msg == Start(input={"value": "ok"}, timeout_ms=300000)
    assert t.run_info.status == RunStatus.running and t.run_info.started_at == NOW
    assert t.run_info.history_seq_id == 1, "last_history_seq + 1, also for the start step"
    timer = timers(records)[0].timer
    assert timer.id == "step_timeout.D1" and timer.step == "start"
    assert timer.expires == NOW + timedelta(minutes=5)
    assert timer.d is not None and timer.d.id == "D1"
    st = final_state(records)
    assert st.kind == RunStateKind.step and st.active_directive_id == "D1" and st.active_step_name == "start"
    assert st.active_history_seq_id == 1 and st.active_timer_id == "step_timeout.D1" and st.started_at == NOW


def test_start_without_input_writes_no_input_record_and_uses_the_default_timeout() -> None:
    d = directive(DirectiveKind.start, Start(input=None, timeout_ms=0), r=run_info())
    records = run(snap(), d)
    assert not of(records, InputRec)
    assert timers(records)[0].timer.expires == NOW + timedelta(minutes=5)


def test_start_skips_inbox_events_left_by_earlier_runs() -> None:
    records = run(snap(inbox_last=77), start_directive())
    assert final_state(records).last_event_seq_id == 77


def test_redelivered_start_never_dispatches_twice() -> None:
    assert run(snap(stepping()), start_directive()) == []
    assert run(snap(waiting()), start_directive()) == []


def test_start_with_run_timeout_arms_a_run_timer() -> None:
    records = run(snap(), start_directive(timeout=30))
    run_timer = [t.timer for t in timers(records) if t.timer.k == TimerKind.run_timeout]
    assert len(run_timer) == 1
    assert run_timer[0].id == f"run_timeout.{RUN}" and run_timer[0].expires == NOW + timedelta(seconds=30)


# --- T2 ------------------------------------------------------------------------------------------


def picked_up(step: str = "charge", hs: int = STEP_SEQ) -> Directive:
    msg = StepPickedUp(step_name=step, worker_id="w2", timestamp=NOW)
    return directive(DirectiveKind.step_picked_up, msg,
                     id="P1", r=run_info(history_seq_id=hs, started_at=NOW))


def test_picked_up_writes_step_started_and_the_worker() -> None:
    records = run(snap(stepping(worker_id=None)), picked_up())
    assert kinds(records) == ["H:step.started", "STATE:step"]
    ev = of(records, type(records[0]))[0].event
    assert ev.worker_id == "w2" and ev.timestamp == NOW and ev.msg.step_name == "charge"
    st = of(records, StateRec)[0]
    assert st.state.worker_id == "w2" and st.expected_seq == 42 and st.cancel_timer == ""


@pytest.mark.parametrize("pickup", [picked_up(step="other"), picked_up(hs=STEP_SEQ - 1)])
def test_picked_up_of_another_dispatch_is_a_no_op(pickup: Directive) -> None:
    assert run(snap(stepping()), pickup) == []


def test_picked_up_outside_a_step_or_on_a_finished_run_is_a_no_op() -> None:
    assert run(snap(waiting()), picked_up()) == []
    assert run(snap(state(RunStateKind.complete)), picked_up()) == []
    assert run(snap(None), picked_up()) == []


# --- T7 / T9 ----------------------------------------------------------------------------------------


def cancel(reason: str = "stop please", id: str = "C1", **kw: Any) -> Directive:
    return directive(DirectiveKind.cancel, Cancel(reason=reason), id=id, **kw)


def test_cancel_during_a_step_is_deferred() -> None:
    records = run(snap(stepping()), cancel())
    assert kinds(records) == ["H:run.cancel_received", "STATE:step"]
    st = final_state(records)
    assert st.pending_cancel is not None and st.pending_cancel.id == "C1"
    second = run(snap(st), cancel(reason="again", id="C2"))
    assert final_state(second).pending_cancel.id == "C2", "a later cancel replaces the pending one"


def test_cancel_while_waiting_ends_the_run_and_cancels_the_wait_timer() -> None:
    records = run(snap(waiting()), cancel(r=running_info(timeout=60)))
    assert kinds(records) == ["INFO", "H:run.cancelled", "STATE:cancel", "RETENTION"]
    assert final_info(records).status == RunStatus.cancelled and final_info(records).completed_at == NOW
    assert history_msg(records, HistoryKind.run_cancelled).reason == "stop please"
    assert history_msg(records, HistoryKind.run_cancelled).duration_ms == 10000
    st = of(records, StateRec)[0]
    assert st.cancel_timer == timer_subject(WF, "wait_timeout.next.S9")
    assert BgTaskKind.purge_run_residue not in bg(records), "no event reached the inbox: nothing to purge"
    info = next(r for r in records if type(r).__name__ == "InfoRec")
    assert info.cancel_timer == timer_subject(WF, f"run_timeout.{RUN}")
    retention = of(records, RetentionRec)[0]
    assert (retention.wf_id, retention.run_id, retention.expires) == (WF, RUN, NOW + CONFIG.retention)


def test_a_run_without_a_run_timeout_cancels_no_run_timer() -> None:
    records = run(snap(waiting()), cancel())
    info = next(r for r in records if type(r).__name__ == "InfoRec")
    assert info.cancel_timer == ""


def test_the_end_of_a_run_that_received_events_purges_the_inbox() -> None:
    records = run(snap(waiting(inbox_used=True)), cancel())
    purge = bg_payload(records, BgTaskKind.purge_run_residue)
    assert (purge.wf_id, purge.run_id, purge.timer_ids) == (WF, RUN, [])


def test_runs_kept_for_ever_schedule_no_removal() -> None:
    from dataclasses import replace

    records = plan(snap(waiting()), cancel(), NOW, replace(CONFIG, retention=None))
    assert of(records, RetentionRec) == []


def test_cancel_before_start_uses_duration_zero() -> None:
    d = directive(DirectiveKind.cancel, Cancel(reason=None), r=run_info())
    records = run(snap(None), d)
    assert history_msg(records, HistoryKind.run_cancelled).duration_ms == 0
    assert of(records, StateRec)[0].expected_seq == 0


# --- T8 -------------------------------------------------------------------------------------------


def terminate() -> Directive:
    return directive(DirectiveKind.terminate, Terminate(reason="enough"), id="X1")


def test_terminate_during_a_step_tells_the_worker() -> None:
    records = run(snap(stepping()), terminate())
    assert kinds(records) == ["INFO", "H:run.terminated", "STATE:terminate", "BG:worker_terminate_run",
                              "RETENTION"]
    assert final_info(records).status == RunStatus.terminated
    cmd = bg_payload(records, BgTaskKind.worker_terminate_run)
    assert cmd.worker_id == "w1" and cmd.run_id == RUN


def test_terminate_without_a_known_worker_sends_no_command() -> None:
    records = run(snap(stepping(worker_id=None)), terminate())
    assert BgTaskKind.worker_terminate_run not in bg(records)


def test_terminate_before_start() -> None:
    d = directive(DirectiveKind.terminate, Terminate(reason=None), r=run_info())
    records = run(snap(None), d)
    assert history_msg(records, HistoryKind.run_terminated).duration_ms == 0
    assert final_state(records).kind == RunStateKind.terminate


# --- terminal guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [RunStateKind.complete, RunStateKind.fail, RunStateKind.cancel,
                                  RunStateKind.terminate])
@pytest.mark.parametrize("d", [
    cancel(), terminate(), inbox_event(3),
    directive(DirectiveKind.complete, Complete(result=1)),
    directive(DirectiveKind.fail, Fail(error={"type": "X", "message": "m", "stack_trace": ""})),
    directive(DirectiveKind.step_timeout,
              StepTimeoutFired(step_name="charge", original_directive_id="next.S0")),
    directive(DirectiveKind.wake_from_inbox, WakeFromInbox()),
])
def test_a_finished_run_ignores_every_directive(kind: RunStateKind, d: Directive) -> None:
    assert run(snap(state(kind)), d) == []


# --- T11 / T12 -----------------------------------------------------------------------------------


def event(id: str = "E1") -> Directive:
    return directive(DirectiveKind.event, Event(event_name="finish", payload={"x": 1}, timeout_ms=0), id=id)


def test_event_during_a_step_is_recorded_but_not_woken() -> None:
    records = run(snap(stepping()), event())
    assert kinds(records) == ["INBOX", "H:event.received", "STATE:step"]
    assert history_msg(records, HistoryKind.event_received).payload == {"x": 1}
    assert of(records, InboxRec)[0].directive.id == "E1"
    assert of(records, StateRec)[0].expected_seq == 42


def test_event_while_waiting_with_an_empty_inbox_wakes_the_run() -> None:
    records = run(snap(waiting()), event())
    assert kinds(records) == ["INBOX", "H:event.received", "STATE:wait", "DIRECTIVE"]
    wake = of(records, DirectiveRec)[0].directive
    assert wake.kind == DirectiveKind.wake_from_inbox and wake.id == "next.E1"


def test_event_while_waiting_with_a_pending_event_does_not_wake_twice() -> None:
    records = run(snap(waiting(), next_event=inbox_event(3)), event())
    assert not of(records, DirectiveRec)


def test_wake_dispatches_the_oldest_inbox_event() -> None:
    e = inbox_event(17, payload={"result": "approved"})
    wake = directive(DirectiveKind.wake_from_inbox, WakeFromInbox(), id="next.E17")
    records = run(snap(waiting(), last_history=30, next_event=e), wake)
    assert kinds(records) == ["TIMER:step_timeout", "INFO", "TASK", "STATE:step"]
    t = task(records)
    assert t.kind == DirectiveKind.event and t.msg.event_name == "finish" and t.run_info.history_seq_id == 31
    st = of(records, StateRec)[0]
    assert st.state.last_event_seq_id == 17 and st.state.active_step_name == "finish"
    assert st.cancel_timer == timer_subject(WF, "wait_timeout.next.S9"), "leaving wait cancels its timer"


def test_wake_with_nothing_to_do_is_a_no_op() -> None:
    wake = directive(DirectiveKind.wake_from_inbox, WakeFromInbox())
    assert run(snap(waiting()), wake) == []
    assert run(snap(stepping(), next_event=inbox_event(3)), wake) == []


# --- T14 -----------------------------------------------------------------------------------------


def wait_timeout(original: str = "next.S9", step: str = "") -> Directive:
    msg = WaitTimeout(timeout_step_name=step, original_directive_id=original)
    return directive(DirectiveKind.wait_timeout, msg, id="WT1")


def test_wait_timeout_with_a_timeout_step_dispatches_it() -> None:
    records = run(snap(waiting(), last_history=9), wait_timeout(step="on_timeout"))
    assert kinds(records) == ["H:wait.timed_out", "TIMER:step_timeout", "INFO", "TASK", "STATE:step"]
    t = task(records)
    assert t.id == "next.WT1" and t.msg.step_name == "on_timeout" and t.run_info.history_seq_id == 10
    assert timers(records)[0].timer.expires == NOW + timedelta(minutes=5)


def test_wait_timeout_without_a_step_fails_the_run() -> None:
    records = run(snap(waiting()), wait_timeout())
    err = history_msg(records, HistoryKind.run_failed).error
    assert err.type == "WaitTimeout" and err.message == "wait timed out without a timeout step"
    assert final_info(records).status == RunStatus.failed


def test_stale_wait_timeout_is_a_no_op() -> None:
    assert run(snap(waiting()), wait_timeout(original="next.OLD")) == []
    assert run(snap(stepping()), wait_timeout()) == []


# --- run timeout (ours) -------------------------------------------------------------------------


def run_timeout() -> Directive:
    from grctl.models.directive import RunTimedOut

    return directive(DirectiveKind.run_timeout, RunTimedOut(timer_id=f"run_timeout.{RUN}"), id="RT1",
                     r=run_info(status=RunStatus.running, started_at=NOW - timedelta(seconds=30), timeout=30))


def test_run_timeout_ends_the_run_as_timed_out() -> None:
    records = run(snap(stepping()), run_timeout())
    assert history(records) == [HistoryKind.run_timeout]
    assert history_msg(records, HistoryKind.run_timeout).duration_ms == 30000
    assert final_info(records).status == RunStatus.timed_out
    assert final_state(records).kind == RunStateKind.fail
    assert BgTaskKind.worker_terminate_run in bg(records)
    info = next(r for r in records if type(r).__name__ == "InfoRec")
    assert info.cancel_timer == timer_subject(WF, f"run_timeout.{RUN}")


def test_run_timeout_after_the_run_ended_is_a_no_op() -> None:
    assert run(snap(state(RunStateKind.complete)), run_timeout()) == []


# --- planning errors -----------------------------------------------------------------------------


def test_unexpected_failure_fails_a_live_run_only() -> None:
    d = event()
    records = plan_failure(snap(stepping()), d, "kaput", NOW)
    err = history_msg(records, HistoryKind.run_failed).error
    assert err.type == "UnexpectedFailure"
    assert err.message == "An unexpected error occurred while processing directive E1 of kind event: kaput"
    assert plan_failure(snap(state(RunStateKind.fail)), d, "x", NOW) == []
    assert plan_failure(snap(None), d, "x", NOW) == []


def test_a_message_that_does_not_match_its_kind_is_a_planning_error() -> None:
    d = directive(DirectiveKind.cancel, Terminate(reason="x"))
    with pytest.raises(PlanError):
        run(snap(waiting()), d)


def test_timer_records_encode_as_schedules() -> None:
    records = run(snap(), start_directive())
    msg = of(records, TimerRec)[0].to_msg()
    assert msg.subject == "grctl_timers.W1.step_timeout.step_timeout.D1"
    assert msg.headers["Nats-Schedule-Target"] == "grctl_timers_fired"
    assert msg.headers["Nats-Schedule"].startswith("@at 2026-01-02T03:09:15")
