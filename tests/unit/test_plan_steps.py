"""plan(): step results (T3–T6, T10), step timeouts (T13), directly received kinds (T15), parent
notification records (C38–C40 of docs/protocol.md#conformance-scenarios)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
from support.plan import (
    CONFIG,
    NOW,
    RUN,
    STEP_DIRECTIVE,
    STEP_SEQ,
    T0,
    TYPE,
    WF,
    bg,
    bg_payload,
    directive,
    error,
    final_info,
    final_state,
    history,
    history_msg,
    inbox_event,
    kinds,
    of,
    run,
    running_info,
    snap,
    step_result,
    stepping,
    task,
    timers,
)

from grctl.engine.plan import PlanError
from grctl.engine.writes import (
    DirectiveRec,
    ErrorRec,
    HistoryRec,
    KVRec,
    OutputRec,
    RetentionRec,
    StateRec,
    timer_subject,
)
from grctl.models.common import ErrorDetails, RunStatus
from grctl.models.directive import (
    Cancel,
    Complete,
    Directive,
    DirectiveKind,
    Fail,
    Step,
    StepPickedUp,
    StepTimeoutFired,
    Wait,
)
from grctl.models.history import HistoryKind
from grctl.models.records import BgTaskKind, RunStateKind

STEP_TIMER = timer_subject(WF, f"step_timeout.{STEP_DIRECTIVE}")


# --- T3 → T4 (C38 b) -------------------------------------------------------------------------------


def test_result_with_next_step_dispatches_it() -> None:
    d = step_result("step", {"step_name": "ship", "timeout_ms": 10000}, kv={"order": "A-1"})
    records = run(snap(stepping(), last_history=123), d)
    assert kinds(records) == ["KV", "H:step.completed", "TIMER:step_timeout", "INFO", "TASK", "STATE:step"]
    kv = of(records, KVRec)[0]
    assert (kv.key, kv.value) == ("order", "A-1") and kv.to_msg().subject == "grctl_wf_kv.W1.R1.order"
    done = of(records, HistoryRec)[0].event
    assert done.worker_id == "w1" and done.msg.step_name == "charge" and done.msg.duration_ms == 12
    t = task(records)
    assert t.id == "next.S1" and t.kind == DirectiveKind.step
    assert t.msg == Step(step_name="ship", timeout_ms=10000)
    assert t.run_info.history_seq_id == 124 and t.run_info.status == RunStatus.running
    assert timers(records)[0].timer.expires == NOW + timedelta(seconds=10)
    st = of(records, StateRec)[0]
    assert st.expected_seq == 42 and st.cancel_timer == STEP_TIMER, "the finished step's timer is cancelled"
    assert st.state.active_directive_id == "next.S1" and st.state.active_step_name == "ship"
    assert st.state.active_history_seq_id == 124
    # No worker has taken the new step yet (the previous step's worker no longer holds anything).
    assert st.state.worker_id is None and st.state.picked_up_at is None


def test_next_step_without_timeout_uses_the_server_default() -> None:
    records = run(snap(stepping()), step_result("step", {"step_name": "ship", "timeout_ms": None}))
    assert timers(records)[0].timer.expires == NOW + timedelta(minutes=5)


@pytest.mark.parametrize("d", [
    step_result("complete", {"result": 1}, hs=STEP_SEQ + 1),
    step_result("complete", {"result": 1}, processed={"step_name": "other", "timeout_ms": 0}),
    step_result("complete", {"result": 1}, processed_kind="start", processed={"input": None}),
])
def test_result_of_another_dispatch_is_a_no_op(d) -> None:
    assert run(snap(stepping()), d) == []


def test_result_while_not_in_a_step_is_a_no_op() -> None:
    from support.plan import waiting

    assert run(snap(waiting()), step_result("complete", {"result": 1})) == []
    assert run(snap(None), step_result("complete", {"result": 1})) == []


def test_result_of_an_event_step_is_matched_by_event_name() -> None:
    st = stepping(active_step_name="finish")
    d = step_result("complete", {"result": "ok"}, processed_kind="event",
                    processed={"event_name": "finish", "payload": None})
    assert history(run(snap(st), d))[0] == HistoryKind.step_completed


# --- T3 → T5 ---------------------------------------------------------------------------------------


def test_result_with_wait_parks_the_run() -> None:
    d = step_result("wait", {"timeout_ms": 0, "timeout_step_name": ""})
    records = run(snap(stepping()), d)
    assert kinds(records) == ["H:step.completed", "INFO", "H:wait.started", "TIMER:wait_timeout",
                              "STATE:wait"]
    started = history_msg(records, HistoryKind.wait_started)
    assert started.directive_id == "next.S1" and started.timeout_ms == 0
    assert timers(records)[0].timer.expires == NOW + timedelta(hours=1)
    st = of(records, StateRec)[0]
    assert st.state.kind == RunStateKind.wait and st.state.active_directive_id == "next.S1"
    assert st.cancel_timer == STEP_TIMER


def test_wait_with_a_pending_event_wakes_at_once() -> None:
    d = step_result("wait", {"timeout_ms": 100, "timeout_step_name": "late"})
    records = run(snap(stepping(), next_event=inbox_event(9)), d)
    wake = of(records, DirectiveRec)[0].directive
    assert wake.id == "next.next.S1" and wake.kind == DirectiveKind.wake_from_inbox
    assert of(records, DirectiveRec)[0].to_msg().headers["Nats-Msg-Id"] == "next.next.S1"
    timer = timers(records)[0].timer
    assert timer.step == "late" and timer.expires == NOW + timedelta(milliseconds=100)


# --- T3 → T6 (C38 d) --------------------------------------------------------------------------------


def test_result_with_complete_ends_the_run() -> None:
    records = run(snap(stepping()), step_result("complete", {"result": "done"}))
    assert kinds(records) == ["H:step.completed", "INFO", "H:run.completed", "STATE:complete", "OUTPUT",
                              "RETENTION"]
    done = history_msg(records, HistoryKind.run_completed)
    assert done.result == "done" and done.duration_ms == 10000
    assert of(records, OutputRec)[0].value == "done"
    info = final_info(records)
    assert info.status == RunStatus.completed and info.completed_at == NOW
    st = final_state(records)
    assert st.kind == RunStateKind.complete and st.active_directive_id == ""
    retention = of(records, RetentionRec)[0]
    assert (retention.wf_type, retention.wf_id, retention.run_id) == (TYPE, WF, RUN)


def test_complete_with_nil_result_writes_no_output() -> None:
    records = run(snap(stepping()), step_result("complete", {"result": None}))
    assert not of(records, OutputRec)


# --- T3 fail_step / fail (C38 c, e) ---------------------------------------------------------------------


def test_fail_step_fails_the_run_with_the_step_error() -> None:
    """Ours: the failed step's store writes are not applied (a retry starts from the store as it was)."""
    d = step_result("fail_step", {"step_name": "charge", "error": error()}, kv={"k": 1})
    records = run(snap(stepping()), d)
    assert kinds(records) == ["H:step.failed", "INFO", "H:run.failed", "STATE:fail", "ERROR",
                              "RETENTION"]
    failed = history_msg(records, HistoryKind.step_failed)
    assert failed.step_name == "charge" and failed.error.type == "ValueError"
    assert history_msg(records, HistoryKind.run_failed).error == failed.error
    assert of(records, ErrorRec)[0].error == failed.error
    assert final_info(records).status == RunStatus.failed


def test_fail_after_a_completed_step() -> None:
    records = run(snap(stepping()), step_result("fail", {"error": error("Oops", "no")}))
    assert history(records) == [HistoryKind.step_completed, HistoryKind.run_failed]
    assert history_msg(records, HistoryKind.run_failed).error.type == "Oops"


def test_a_bad_next_kind_is_a_planning_error() -> None:
    with pytest.raises(PlanError):
        run(snap(stepping()), step_result("dance", {}))


def test_an_invalid_store_key_is_a_planning_error() -> None:
    with pytest.raises(PlanError, match="store key"):
        run(snap(stepping()), step_result("complete", {"result": 1}, kv={"a.b": 1}))


# --- pending cancel (C39) --------------------------------------------------------------------------------


def with_pending_cancel():
    cancel = directive(DirectiveKind.cancel, Cancel(reason="user said so"), id="C1",
                       ts=NOW - timedelta(seconds=2))
    return stepping(pending_cancel=cancel.to_wire())


def test_pending_cancel_wins_over_a_successful_result() -> None:
    records = run(snap(with_pending_cancel()), step_result("step", {"step_name": "ship", "timeout_ms": 0}))
    assert history(records) == [HistoryKind.step_completed, HistoryKind.run_cancelled]
    assert not [k for k in kinds(records) if k == "TASK"]
    assert history_msg(records, HistoryKind.run_cancelled).reason == "user said so"
    assert final_info(records).status == RunStatus.cancelled
    assert of(records, StateRec)[0].cancel_timer == STEP_TIMER


def test_fail_step_wins_over_a_pending_cancel() -> None:
    d = step_result("fail_step", {"step_name": "charge", "error": error()})
    records = run(snap(with_pending_cancel()), d)
    assert history(records) == [HistoryKind.step_failed, HistoryKind.run_failed]


# --- T13 (C38 f) ----------------------------------------------------------------------------------------


def step_timeout(original: str = STEP_DIRECTIVE):
    msg = StepTimeoutFired(step_name="charge", original_directive_id=original)
    return directive(DirectiveKind.step_timeout, msg,
                     id="ST1")


def test_step_timeout_of_the_active_step_fails_the_run() -> None:
    records = run(snap(stepping()), step_timeout())
    assert kinds(records) == ["H:step.timeout", "INFO", "H:run.failed", "STATE:fail", "ERROR",
                              "BG:worker_terminate_run", "RETENTION"]
    assert history_msg(records, HistoryKind.step_timeout).duration_ms == 10000
    err = history_msg(records, HistoryKind.run_failed).error
    assert (err.type, err.message) == ("StepTimeout", "step charge timed out")
    cmd = bg_payload(records, BgTaskKind.worker_terminate_run)
    assert (cmd.worker_id, cmd.run_id) == ("w1", RUN)


def test_stale_step_timeout_is_a_no_op() -> None:
    assert run(snap(stepping()), step_timeout(original="next.OLD")) == []


def windowed_timeout(armed_at: datetime, deadline: datetime) -> Directive:
    task = directive(DirectiveKind.step, Step(step_name="charge", timeout_ms=1000), id=STEP_DIRECTIVE)
    msg = StepTimeoutFired(step_name="charge", original_directive_id=STEP_DIRECTIVE, armed_at=armed_at,
                      deadline=deadline, armed_by=task.to_wire())
    return directive(DirectiveKind.step_timeout, msg, id="ST2")


def test_a_result_reported_in_time_is_applied_instead_of_the_timeout() -> None:
    reported = step_result("complete", {"result": "made it"})
    s = dataclasses.replace(snap(stepping()), reported_result=reported)
    records = run(s, windowed_timeout(T0, NOW))
    assert history(records) == [HistoryKind.step_completed, HistoryKind.run_completed]
    assert final_info(records).status == RunStatus.completed


def test_a_step_no_worker_has_taken_yet_keeps_waiting_for_one() -> None:
    queued = stepping(worker_id=None)
    records = run(snap(queued), windowed_timeout(T0, T0 + timedelta(seconds=10)))
    assert kinds(records) == ["INFO", "TIMER:step_timeout", "STATE:step"]
    assert timers(records)[0].timer.expires == NOW + timedelta(seconds=10)  # its whole timeout again
    stuck = final_info(records).stuck  # ours: shown as stuck, once
    assert stuck is not None and (stuck.reason, stuck.handler) == ("no_worker", "charge")
    marked = final_state(records)
    again = run(snap(marked), windowed_timeout(NOW, NOW + timedelta(seconds=10)))
    assert kinds(again) == ["TIMER:step_timeout", "STATE:step"]


def test_a_step_taken_late_gets_its_timeout_from_the_pick_up() -> None:
    late = stepping(picked_up_at=T0 + timedelta(seconds=6))
    records = run(snap(late), windowed_timeout(T0, T0 + timedelta(seconds=10)))
    assert timers(records)[0].timer.expires == T0 + timedelta(seconds=16)
    # Armed again at NOW, after the pick-up: when it fires, the step has had its time.
    again = run(snap(late), windowed_timeout(NOW, NOW + timedelta(seconds=6)))
    assert HistoryKind.run_failed in history(again)


def test_a_pick_up_records_its_time() -> None:
    msg = StepPickedUp(step_name="charge", worker_id="w2", timestamp=NOW)
    pick_up = directive(DirectiveKind.step_picked_up, msg, id="P1", r=running_info(history_seq_id=STEP_SEQ))
    picked = run(snap(stepping(worker_id=None)), pick_up)
    assert final_state(picked).worker_id == "w2" and final_state(picked).picked_up_at == NOW


def test_a_deadline_missed_while_unwatched_arms_the_timer_again() -> None:
    watched = NOW - timedelta(seconds=2)  # this engine came up after the timer was armed (at T0)
    s = dataclasses.replace(snap(stepping()), watched_since=watched)
    records = run(s, windowed_timeout(T0, NOW - timedelta(seconds=5)))
    assert kinds(records) == ["TIMER:step_timeout", "STATE:step"]
    timer = timers(records)[0].timer
    assert timer.id == f"step_timeout.{STEP_DIRECTIVE}" and timer.created == NOW
    assert timer.expires == watched + CONFIG.recovery_grace  # later than the deadline that passed
    assert of(records, StateRec)[0].expected_seq == 42, "guarded: the step may report meanwhile"


def test_the_grace_is_given_once_a_window_was_watched() -> None:
    s = dataclasses.replace(snap(stepping()), watched_since=T0)  # up before the re-armed timer's window
    records = run(s, windowed_timeout(NOW - timedelta(seconds=1), NOW))
    assert HistoryKind.run_failed in history(records)


# --- T15 -----------------------------------------------------------------------------------------


def test_direct_fail_directive_fails_any_live_run() -> None:
    d = directive(DirectiveKind.fail, Fail(error=ErrorDetails(type="TimerExhausted", message="m")))
    records = run(snap(stepping()), d)
    assert history(records) == [HistoryKind.run_failed]
    assert BgTaskKind.worker_terminate_run in bg(records)


def test_direct_complete_and_wait_and_step() -> None:
    assert history(run(snap(stepping()), directive(DirectiveKind.complete, Complete(result=3)))) == [
        HistoryKind.run_completed]
    assert history(run(snap(stepping()), directive(DirectiveKind.wait, Wait()))) == [HistoryKind.wait_started]
    st = run(snap(stepping()), directive(DirectiveKind.step, Step(step_name="x"), id="Z1"))
    assert task(st).id == "Z1"


# --- C40: child notification ---------------------------------------------------------------------------


def child_info():
    return running_info(parent_wf_id="P1", parent_wf_type="PT", parent_run_id="PR1",
                        parent_callback_step="on_done", history_seq_id=STEP_SEQ)


def test_completed_child_notifies_its_parent_run() -> None:
    records = run(snap(stepping()), step_result("complete", {"result": "child-result"}, r=child_info()))
    note = bg_payload(records, BgTaskKind.notify_parent_complete)
    assert (note.parent_wf_id, note.parent_run_id) == ("P1", "PR1")
    assert (note.step_name, note.child_wf_id) == ("on_done", WF)
    assert note.status == RunStatus.completed and note.result == "child-result" and note.error is None


def test_failed_child_notifies_with_its_error() -> None:
    d = step_result("fail_step", {"step_name": "charge", "error": error("RuntimeError", "child boom")},
                    r=child_info())
    note = bg_payload(run(snap(stepping()), d), BgTaskKind.notify_parent_complete)
    assert note.status == RunStatus.failed and note.error.type == "RuntimeError" and note.result is None


def test_cancelled_child_notifies_with_the_reason() -> None:
    d = directive(DirectiveKind.cancel, Cancel(reason="why not"), r=child_info())
    from support.plan import waiting

    note = bg_payload(run(snap(waiting()), d), BgTaskKind.notify_parent_complete)
    assert note.status == RunStatus.cancelled
    assert (note.error.type, note.error.message) == ("Cancelled", "why not")


def test_no_parent_no_notification() -> None:
    records = run(snap(stepping()), step_result("complete", {"result": 1}))
    assert BgTaskKind.notify_parent_complete not in bg(records)
