"""The planner for code that does not fit a run: a held step marks the run stuck once, a pick-up clears
it, the run's end keeps where it was for a retry, a resume starts there; and what a live run needs of a
handler catalog (the catalog check)."""

from __future__ import annotations

import msgspec
from support.plan import (
    NOW,
    STEP_SEQ,
    directive,
    final_info,
    final_state,
    history_msg,
    kinds,
    of,
    run,
    run_info,
    running_info,
    snap,
    stepping,
    task,
    waiting,
)

from grctl.engine.catalog import Handlers, needed
from grctl.engine.writes import InfoRec, StateRec
from grctl.models.command import EventDef, WorkflowTypeDef
from grctl.models.common import RunStatus, Stuck
from grctl.models.directive import (
    ActiveTask,
    Cancel,
    Directive,
    DirectiveKind,
    Resume,
    Start,
    Step,
    StepHeld,
    StepPickedUp,
    Terminate,
    Wait,
)
from grctl.models.history import HistoryKind
from grctl.models.records import RunStateKind


def held(reason: str = "missing_handler", step: str = "charge", hs: int = STEP_SEQ) -> Directive:
    return directive(DirectiveKind.step_held, StepHeld(step_name=step, worker_id="w2", reason=reason,
                                                       detail="no handler named 'charge'"),
                     id="H1", r=running_info(history_seq_id=hs))


def test_a_held_step_marks_the_run_stuck_once_and_counts_as_not_taken() -> None:
    records = run(snap(stepping()), held())
    assert kinds(records) == ["INFO", "STATE:step"]
    stuck = final_info(records).stuck
    assert stuck is not None and (stuck.reason, stuck.handler, stuck.worker_id, stuck.since) == (
        "missing_handler", "charge", "w2", NOW)
    after = final_state(records)
    assert after.held == "missing_handler:charge" and after.worker_id is None and after.picked_up_at is None
    assert run(snap(after), held()) == []  # said again (a redelivery): nothing to write
    assert kinds(run(snap(after), held("unbound_parameters"))) == ["INFO", "STATE:step"]


def test_a_held_report_of_another_dispatch_plans_nothing() -> None:
    assert run(snap(stepping()), held(hs=STEP_SEQ + 1)) == []
    assert run(snap(stepping()), held(step="other")) == []
    assert run(snap(waiting()), held()) == []


def test_a_pick_up_clears_the_stuck_mark() -> None:
    stuck_state = final_state(run(snap(stepping()), held()))
    pick_up = directive(DirectiveKind.step_picked_up, StepPickedUp(step_name="charge", worker_id="w1",
                                                                   timestamp=NOW), id="P1")
    records = run(snap(stuck_state), pick_up)
    assert final_info(records).stuck is None and final_state(records).held == ""
    assert of(run(snap(stepping()), pick_up), InfoRec) == []  # not stuck: no run-info write


def test_the_end_of_a_run_keeps_its_task_and_drops_the_stuck_mark() -> None:
    active = ActiveTask.of(Directive(id="next.S0", timestamp=NOW, kind=DirectiveKind.step,
                                     run_info=running_info(), msg=Step(step_name="charge")))
    stuck_state = final_state(run(snap(stepping(active_task=active)), held()))
    records = run(snap(stuck_state), directive(DirectiveKind.terminate, Terminate(reason="ops"), id="X1"))
    assert final_state(records).active_task == active and final_state(records).held == ""
    assert final_info(records).stuck is None and final_info(records).status == RunStatus.terminated


def test_a_resume_starts_a_new_run_at_the_task_the_old_one_ended_in() -> None:
    active = Directive(id="next.S0", timestamp=NOW, kind=DirectiveKind.step,
                       run_info=running_info(id="OLD"), msg=Step(step_name="charge", timeout_ms=2000))
    d = directive(DirectiveKind.resume, Resume(retry_of="OLD", task=ActiveTask.of(active), input={"a": 1},
                                               last_event_seq_id=7), id="resume.R1")
    records = run(snap(), d)
    assert history_msg(records, HistoryKind.run_started).retry_of == "OLD"
    assert history_msg(records, HistoryKind.run_started).resumed_at == "charge"
    dispatched = task(records)
    assert dispatched.run_info.id == "R1" and isinstance(dispatched.msg, Step)
    assert dispatched.msg.timeout_ms == 2000
    states = of(records, StateRec)
    assert [s.expected_seq for s in states] == [0, None]  # one compare-and-swap: a second resume fails
    assert final_state(records).last_event_seq_id == 7 and final_state(records).active_step_name == "charge"
    assert run(snap(stepping()), d) == []  # resumed before


def test_a_resume_of_a_wait_waits_again() -> None:
    w = Directive(id="next.W0", timestamp=NOW, kind=DirectiveKind.wait, run_info=running_info(id="OLD"),
                  msg=Wait(timeout_ms=60_000, timeout_step_name="expired"))
    records = run(snap(), directive(DirectiveKind.resume, Resume(retry_of="OLD", task=ActiveTask.of(w)),
                                    id="resume.R2"))
    assert final_state(records).kind == RunStateKind.wait
    assert history_msg(records, HistoryKind.wait_started).timeout_step_name == "expired"


def test_what_a_live_run_needs_of_a_catalog() -> None:
    registered = Handlers.of(WorkflowTypeDef(type="T", start_step="start", steps=["ship", "expired"],
                                             events=[EventDef(name="approve")]))
    assert list(needed(stepping(active_step_name="ship"), registered)) == [("step", "ship")]
    assert list(needed(stepping(active_step_name="approve"), registered)) == [("event", "approve")]
    assert list(needed(stepping(active_step_name="start"), registered)) == [("start", "start")]
    w = Directive(id="next.W0", timestamp=NOW, kind=DirectiveKind.wait, run_info=running_info(),
                  msg=Wait(timeout_step_name="expired"))
    assert list(needed(waiting(active_task=ActiveTask.of(w)), registered)) == [("event", "approve"),
                                                                          ("timeout", "expired")]
    renamed = Handlers.of(WorkflowTypeDef(type="T", start_step="start", steps=["ship", "expired"],
                                          events=[EventDef(name="approved")]))
    assert registered.has("event", "approve") and not renamed.has("event", "approve")


def test_the_start_task_is_kept_without_its_input_and_resumed_with_it() -> None:
    start = directive(DirectiveKind.start, Start(input={"order": 1}, timeout_ms=1000), id="start.R1",
                      r=run_info())
    kept = final_state(run(snap(), start)).active_task
    assert kept is not None and kept.message() == Start(input=None, timeout_ms=1000)
    again = Resume(retry_of="OLD", task=kept, input={"order": 1})
    resumed = run(snap(), directive(DirectiveKind.resume, again, id="resume.R3"))
    assert task(resumed).msg == Start(input={"order": 1}, timeout_ms=1000)
    assert history_msg(resumed, HistoryKind.run_started).resumed_at == "start"


def test_the_run_index_counts_stuck_runs_by_type() -> None:
    from grctl.engine.runindex import RunIndex

    index = RunIndex(None, None, None)  # type: ignore[arg-type]  # only its in-memory part is used
    stuck = Stuck(reason="missing_handler", handler="ship", since=NOW)
    for seq, info in enumerate([running_info(id="A", stuck=stuck), running_info(id="B", stuck=stuck),
                                running_info(id="A"), running_info(id="B", stuck=stuck)], start=1):
        index._add(msgspec.msgpack.encode(info), seq, "grctl_run.T.W1.X.info")
    assert index._stuck["T"] == 1  # what the gauge grctl_engine_stuck_runs{wf_type="T"} says
    assert index.query(NOW, stuck=True) == [msgspec.msgpack.encode(running_info(id="B", stuck=stuck))]


def test_a_cancel_ends_a_held_run_at_once() -> None:
    stuck_state = final_state(run(snap(stepping()), held()))
    cancel = directive(DirectiveKind.cancel, Cancel(reason="no fix coming"), id="C1")
    assert final_state(run(snap(stuck_state), cancel)).kind == RunStateKind.cancel
    assert final_state(run(snap(stepping()), cancel)).pending_cancel is not None  # a running step: deferred
