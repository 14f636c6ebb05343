"""What a fired timer turns into (docs/protocol.md#step-timeouts-and-timers, C42): the timer handler's pure
part."""

from __future__ import annotations

from support.plan import NOW, directive, running_info

from grctl import settings
from grctl.engine.timers import directive_for
from grctl.models.directive import DirectiveKind, Event, Start, Step, Wait
from grctl.models.records import Timer, TimerKind


def timer(kind: str, armed_by) -> Timer:
    return Timer(id=f"{kind}.{armed_by.id}", k=kind, wfid="W1", created=NOW, expires=NOW,
                 d=armed_by.to_wire())


def test_step_timer_of_a_start_task_names_the_start_step() -> None:
    start = directive(DirectiveKind.start, Start(input=None, timeout_ms=100), id="D1")
    d = directive_for(timer(TimerKind.step_timeout, start), start, delivered=1)
    assert d is not None and d.kind == DirectiveKind.step_timeout
    assert (d.msg.step_name, d.msg.original_directive_id) == ("start", "D1")
    assert d.run_info == start.run_info and d.id


def test_step_timer_of_step_and_event_tasks() -> None:
    step = directive(DirectiveKind.step, Step(step_name="charge"), id="next.S1")
    assert directive_for(timer(TimerKind.step_timeout, step), step, 1).msg.step_name == "charge"
    event = directive(DirectiveKind.event, Event(event_name="finish"), id="E1")
    assert directive_for(timer(TimerKind.step_timeout, event), event, 1).msg.step_name == "finish"


def test_wait_timer_carries_the_timeout_step() -> None:
    w = directive(DirectiveKind.wait, Wait(timeout_ms=100, timeout_step_name="late"), id="next.S2")
    d = directive_for(timer(TimerKind.wait_timeout, w), w, 1)
    assert d.kind == DirectiveKind.wait_timeout
    assert (d.msg.timeout_step_name, d.msg.original_directive_id) == ("late", "next.S2")


def test_run_timer_becomes_a_run_timeout() -> None:
    start = directive(DirectiveKind.start, Start(), id="D1", r=running_info(timeout=5))
    d = directive_for(timer(TimerKind.run_timeout, start), start, 1)
    assert d.kind == DirectiveKind.run_timeout and d.msg.timer_id == "run_timeout.D1"


def test_a_timer_delivered_too_many_times_fails_the_run() -> None:
    start = directive(DirectiveKind.start, Start(), id="D1")
    d = directive_for(timer(TimerKind.step_timeout, start), start, delivered=settings.TIMER_DELIVERIES + 1)
    assert d.kind == DirectiveKind.fail and d.msg.error.type == "TimerExhausted"
    limit = settings.TIMER_DELIVERIES
    assert d.msg.error.message == f"timer step_timeout.D1 exceeded max delivery count {limit}"
    last = directive_for(timer(TimerKind.step_timeout, start), start, delivered=settings.TIMER_DELIVERIES)
    assert last.kind == DirectiveKind.step_timeout


def test_a_fired_timer_names_its_directive_after_its_stream_sequence() -> None:
    start = directive(DirectiveKind.start, Start(), id="D1")
    first = directive_for(timer(TimerKind.step_timeout, start), start, 1, fired_seq=77)
    again = directive_for(timer(TimerKind.step_timeout, start), start, 2, fired_seq=77)
    assert first.id == again.id == "timer.77", "a redelivered fired timer is deduplicated by the stream"


def test_a_step_timeout_carries_its_window_and_the_task_it_guards() -> None:
    start = directive(DirectiveKind.start, Start(), id="D1")
    t = timer(TimerKind.step_timeout, start)
    d = directive_for(t, start, 1)
    assert (d.msg.armed_at, d.msg.deadline, d.msg.armed_by) == (t.created, t.expires, t.d)


def test_a_wait_timer_without_a_wait_message_fails_the_run() -> None:
    step = directive(DirectiveKind.step, Step(step_name="x"), id="S9")
    d = directive_for(timer(TimerKind.wait_timeout, step), step, 1)
    assert d.kind == DirectiveKind.fail
    assert d.msg.error.message.startswith("failed to build wait timeout directive")


def test_unknown_timer_kinds_are_dropped() -> None:
    step = directive(DirectiveKind.step, Step(step_name="x"), id="S9")
    assert directive_for(timer("bogus", step), step, 1) is None
