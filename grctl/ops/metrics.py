"""The metrics of the worker and the engine, and the one-line hooks the code paths call.

Counting is off until ``enable()`` (a process that serves ``/metrics`` turns it on), so the hooks cost a
function call and a test of a flag when nobody scrapes, and a process that never counts never imports
prometheus_client (about 50 ms at the start of every command line and SDK program). In a grctld
worker process the values live in the multiprocess directory the supervisor hands down
(``grctl.ops.multiproc``); elsewhere in memory. Every name starts with ``grctl_``; the workflow type is
the label ``wf_type`` where it applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from nats.aio.msg import Msg

from grctl import settings
from grctl.models.command import APIResponse, command_kind


class _Metrics:
    """Every metric, in the default registry (created once, by the first ``enable()``)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        # worker
        self.steps_started = Counter("grctl_worker_steps_started", "Steps a worker began to run",
                                     ["wf_type"])
        self.steps_finished = Counter(
            "grctl_worker_steps_finished",
            "Steps a worker finished: ok (result reported), failed (the handler raised; failure reported), "
            "not_reported (NATS trouble: delivered again), superseded (another delivery's execution claimed "
            "the step), ended (delivered again after its step ended: not run), cancelled (terminated or shut "
            "down)",
            ["wf_type", "outcome"])
        self.step_duration = Histogram("grctl_worker_step_duration_seconds", "How long a step ran",
                                       ["wf_type"], buckets=settings.STEP_BUCKETS)
        self.steps_in_flight = Gauge("grctl_worker_steps_in_flight", "Steps running now", ["wf_type"],
                                     multiprocess_mode="livesum")
        self.tasks = Counter("grctl_worker_tasks", "Tasks that ran to an outcome: completed, failed, "
                             "cancelled", ["wf_type", "outcome"])
        self.task_attempts = Counter("grctl_worker_task_attempts", "Task attempts by outcome: ok, failed, "
                                     "cancelled", ["wf_type", "outcome"])
        self.redeliveries = Counter("grctl_worker_redeliveries", "Worker tasks delivered more than once",
                                    ["wf_type"])
        self.steps_held = Counter("grctl_worker_steps_held", "Worker tasks handed back because the "
                                  "worker's code cannot run them (missing handler, parameters that do "
                                  "not bind)", ["wf_type", "reason"])
        # any process with a NATS connection
        self.nats_reconnects = Counter("grctl_nats_reconnects", "Reconnections to NATS after a lost "
                                       "connection")
        self.consumer_pending = Gauge("grctl_consumer_pending", "Messages waiting in a durable consumer, as "
                                      "seen with the last fetch", ["consumer"], multiprocess_mode="livemax")
        # engine
        self.runs_started = Counter("grctl_engine_runs_started", "Runs started (their start directive "
                                    "applied)", ["wf_type"])
        self.runs_stuck = Counter("grctl_engine_runs_stuck", "Runs marked stuck on a mismatch between "
                                  "code and run (once per run, reason and handler)", ["wf_type", "reason"])
        self.stuck_runs = Gauge("grctl_engine_stuck_runs", "Live runs stuck on a mismatch between code "
                                "and run now, as this engine's run index sees them", ["wf_type"],
                                multiprocess_mode="livemax")
        self.runs_ended = Counter("grctl_engine_runs_ended", "Runs ended, by final status",
                                  ["wf_type", "status"])
        self.directives = Counter("grctl_engine_directives", "Directives applied: committed, or a no-op",
                                  ["kind", "outcome"])
        self.steps_ended = Counter("grctl_engine_steps_ended", "Steps ended, as the engine recorded their "
                                   "end: completed, failed, cancelled, timed_out", ["wf_type", "outcome"])
        self.commit_batch = Histogram("grctl_engine_commit_batch_messages", "Messages per atomic batch "
                                      "committed", buckets=settings.BATCH_BUCKETS)
        self.commit_latency = Histogram("grctl_engine_commit_seconds", "Time to commit one atomic batch",
                                        buckets=settings.LATENCY_BUCKETS)
        self.api_requests = Counter("grctl_engine_api_requests", "API requests answered, by command and "
                                    "outcome", ["kind", "outcome"])
        self.api_latency = Histogram("grctl_engine_api_request_seconds", "Time from an API request's arrival "
                                     "to its reply", ["kind"], buckets=settings.LATENCY_BUCKETS)
        self.timers_fired = Counter("grctl_engine_timers_fired", "Timers fired and turned into a directive",
                                    ["kind"])
        self.bg_tasks = Counter("grctl_engine_background_tasks", "Background tasks run: ok, retry, dropped",
                                ["kind", "outcome"])
        self.storage_full = Gauge("grctl_engine_storage_full", "1 while JetStream refuses the engine's "
                                  "writes for lack of storage", multiprocess_mode="livemax")
        self.storage_refusals = Counter("grctl_engine_storage_refusals", "Commits JetStream refused for "
                                        "lack of storage")
        self.schedule_ticks = Counter("grctl_schedule_ticks", "Schedule ticks handled: fired (a run "
                                      "started), skipped (overlap), buffered (overlap), missed (past the "
                                      "catch-up window)", ["schedule", "outcome"])
        self.schedule_late = Counter("grctl_schedule_ticks_late", "Ticks fired more than a second after "
                                     "their time", ["schedule"])
        self.schedule_lateness = Histogram("grctl_schedule_tick_lateness_seconds", "From a tick's time "
                                           "(jitter included) to its run's creation", ["schedule"],
                                           buckets=settings.LATENCY_BUCKETS)


_on = False
_m: _Metrics = cast(_Metrics, None)  # set by the first enable(); hooks only read it while _on


def enable() -> None:
    global _on, _m
    if _m is None:
        _m = _Metrics()
    _on = True


def enabled() -> bool:
    return _on


_RUN_END_STATUS = {"run.completed": "completed", "run.failed": "failed", "run.cancelled": "cancelled",
                   "run.terminated": "terminated", "run.timeout": "timed_out"}
_STEP_END_OUTCOME = {"step.completed": "completed", "step.failed": "failed", "step.cancelled": "cancelled",
                     "step.timeout": "timed_out"}
_API_OUTCOMES = {4000: "unknown_command", 4001: "already_running", 4002: "not_found", 4003: "finished",
                 4004: "not_registered", 4005: "invalid", 4006: "invalid", 5000: "internal", 5030: "busy",
                 5070: "storage_full"}


# --- hooks: one line at the place where the thing happens -------------------------------------------------

_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def _at(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, remembered: prometheus_client checks and locks on every call, which
    costs more than the count itself."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child



def step_started(wf_type: str) -> None:
    if _on:
        _at(_m.steps_started, wf_type).inc()
        _at(_m.steps_in_flight, wf_type).inc()


def step_finished(wf_type: str, outcome: str, seconds: float) -> None:
    if _on:
        _at(_m.steps_finished, wf_type, outcome).inc()
        _at(_m.step_duration, wf_type).observe(seconds)
        _at(_m.steps_in_flight, wf_type).dec()


_TASK_OUTCOME = {"ok": "completed", "failed": "failed", "cancelled": "cancelled"}


def task_attempt(wf_type: str, outcome: str, final: bool) -> None:
    """One attempt of a task ended (ok, failed, cancelled); ``final``: no retry follows."""
    if _on:
        _at(_m.task_attempts, wf_type, outcome).inc()
        if final:
            _at(_m.tasks, wf_type, _TASK_OUTCOME[outcome]).inc()


def delivered(wf_type: str, times: int) -> None:
    """A worker task arrived; ``times`` > 1 is a redelivery."""
    if _on and times > 1:
        _at(_m.redeliveries, wf_type).inc()


def step_held(wf_type: str, reason: str) -> None:
    """A worker handed a task back: its code cannot run it."""
    if _on:
        _at(_m.steps_held, wf_type, reason).inc()


def run_stuck(wf_type: str, reason: str) -> None:
    """The engine marked a run stuck."""
    if _on:
        _at(_m.runs_stuck, wf_type, reason).inc()


def stuck_runs(wf_type: str, count: int) -> None:
    """How many live runs of ``wf_type`` are stuck now."""
    if _on:
        _at(_m.stuck_runs, wf_type).set(count)


def nats_reconnected() -> None:
    if _on:
        _m.nats_reconnects.inc()


def fetched(consumer: str, msgs: Sequence[Msg]) -> None:
    """A fetch returned: what the server said is still pending behind its last message (an empty
    fetch: nothing)."""
    if _on:
        _at(_m.consumer_pending, consumer).set(msgs[-1].metadata.num_pending if msgs else 0)


def directive_applied(kind: str, wf_type: str, committed: bool, ended_kind: str | None = None) -> None:
    """A directive took effect (``committed``) or was a no-op; ``ended_kind``: the terminal history
    event it wrote, if it ended the run."""
    if not _on:
        return
    _at(_m.directives, kind, "committed" if committed else "no_op").inc()
    if committed and kind == "start":
        _at(_m.runs_started, wf_type).inc()
    if ended_kind is not None:
        _at(_m.runs_ended, wf_type, _RUN_END_STATUS.get(ended_kind, ended_kind)).inc()


def steps_ended(wf_type: str, kinds: Sequence[str]) -> None:
    """A committed directive recorded the end of these steps (history kinds such as ``step.completed``)
    of a run of ``wf_type``."""
    if _on:
        for kind in kinds:
            _at(_m.steps_ended, wf_type, _STEP_END_OUTCOME.get(kind, kind)).inc()


def batch_committed(messages: int, seconds: float) -> None:
    if _on:
        _m.commit_batch.observe(messages)
        _m.commit_latency.observe(seconds)


def api_answered(request: bytes, reply: APIResponse, seconds: float) -> None:
    if _on:
        kind = command_kind(request)
        code = reply.error.code if reply.error is not None else 0
        outcome = "ok" if reply.success else _API_OUTCOMES.get(code, str(code))
        _at(_m.api_requests, kind, outcome).inc()
        _at(_m.api_latency, kind).observe(seconds)


def storage_refused() -> None:
    if _on:
        _m.storage_refusals.inc()
        _m.storage_full.set(1)


def storage_accepting() -> None:
    if _on:
        _m.storage_full.set(0)


def timer_fired(kind: str) -> None:
    if _on:
        _at(_m.timers_fired, kind).inc()


def background_task(kind: str, outcome: str) -> None:
    if _on:
        _at(_m.bg_tasks, kind, outcome).inc()


def schedule_tick(schedule: str, outcome: str, lateness: float | None = None) -> None:
    """A schedule's tick was handled; ``lateness``: seconds after its time, for a fired tick."""
    if not _on:
        return
    _at(_m.schedule_ticks, schedule, outcome).inc()
    if lateness is not None:
        _at(_m.schedule_lateness, schedule).observe(max(0.0, lateness))
        if lateness > settings.SCHEDULE_LATE_AFTER:
            _at(_m.schedule_late, schedule).inc()
