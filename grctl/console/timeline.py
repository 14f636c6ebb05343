"""A run's history as a timeline: one bar per step execution, task, wait and timer, placed on the run's
time axis, with the retries of a task as marks on its bar. Pure: the page draws what this returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from grctl.models.history import HistoryEvent, HistoryKind

H = HistoryKind
STEP_ENDS = {H.step_completed: "ok", H.step_failed: "failed", H.step_cancelled: "cancelled",
             H.step_timeout: "timed_out"}
TASK_ENDS = {H.task_completed: "ok", H.task_failed: "failed", H.task_cancelled: "cancelled"}
RUN_ENDS = {H.run_completed, H.run_failed, H.run_cancelled, H.run_terminated, H.run_timeout}


@dataclass
class Bar:
    """One thing that took time: ``kind`` step, task, wait or timer; ``outcome`` ok, failed, cancelled,
    timed_out, or running while it has not ended."""

    kind: str
    label: str
    start: datetime
    end: datetime | None = None
    outcome: str = "running"
    retries: list[datetime] = field(default_factory=list)  # failed attempts that were tried again
    step: str = ""  # a task's step

    def seconds(self, now: datetime) -> float:
        return max(0.0, ((self.end or now) - self.start).total_seconds())


@dataclass
class Timeline:
    start: datetime
    end: datetime
    bars: list[Bar]

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 1e-3)

    def x(self, moment: datetime) -> float:
        """Where ``moment`` falls, in percent of the axis."""
        return min(100.0, max(0.0, (moment - self.start).total_seconds() * 100.0 / self.seconds))

    def width(self, bar: Bar) -> float:
        """The bar's width in percent (at least a sliver, so an instant still shows)."""
        return max(0.4, self.x(bar.end or self.end) - self.x(bar.start))


def build(events: list[HistoryEvent], now: datetime) -> Timeline | None:
    """The timeline of ``events`` (a run's history in order); None for an empty history."""
    if not events:
        return None
    bars: list[Bar] = []
    steps: dict[str, Bar] = {}
    tasks: dict[str, Bar] = {}
    wait: Bar | None = None
    end = None
    for event in events:
        m, k, at = event.msg, event.kind, event.timestamp
        if wait is not None and k in (H.event_received, H.wait_timed_out, H.step_started, *RUN_ENDS):
            wait.end, wait.outcome = at, "timed_out" if k == H.wait_timed_out else "ok"
            wait = None
        if k == H.step_started:
            steps[m.step_name] = _add(bars, Bar("step", m.step_name, at))
        elif k in STEP_ENDS:
            _close(steps.pop(m.step_name, None), at, STEP_ENDS[k])
        elif k == H.task_started:
            label = f"{m.step_name} › {m.task_name}"
            tasks[m.task_id] = tasks.get(m.task_id) or _add(bars, Bar("task", label, at, step=m.step_name))
        elif k == H.task_attempt_failed:
            bar = tasks.get(m.task_id)
            if bar is not None:
                bar.retries.append(at)
        elif k in TASK_ENDS:
            _close(tasks.pop(m.task_id, None), at, TASK_ENDS[k])
        elif k == H.wait_started:
            label = f"wait for an event (then {m.timeout_step_name})" if m.timeout_step_name else \
                "wait for an event"
            wait = _add(bars, Bar("wait", label, at))
        elif k == H.sleep_recorded:
            _add(bars, Bar("timer", f"sleep {m.duration_ms / 1000:g} s", at,
                           _later(at, m.duration_ms), "ok"))
        if k in RUN_ENDS:
            end = at
    finish = end or now
    for bar in bars:
        if bar.end is None and end is not None:
            bar.end, bar.outcome = end, "cancelled"  # the run ended around it
    return Timeline(events[0].timestamp, max(finish, events[0].timestamp), _under_their_steps(bars))


def _under_their_steps(bars: list[Bar]) -> list[Bar]:
    """Each task right after the execution of the step that ran it (a task's start can be recorded a
    moment before its step's)."""
    tasks = [b for b in bars if b.kind == "task"]
    ordered: list[Bar] = []
    for bar in bars:
        if bar.kind == "task":
            continue
        ordered.append(bar)
        if bar.kind == "step":
            mine = [t for t in tasks if t.step == bar.label and (bar.end is None or t.start <= bar.end)]
            ordered += mine
            tasks = [t for t in tasks if t not in mine]
    return ordered + tasks


def _add(bars: list[Bar], bar: Bar) -> Bar:
    bars.append(bar)
    return bar


def _close(bar: Bar | None, at: datetime, outcome: str) -> None:
    if bar is not None:
        bar.end, bar.outcome = at, outcome


def _later(at: datetime, ms: int) -> datetime:
    return at + timedelta(milliseconds=ms)
