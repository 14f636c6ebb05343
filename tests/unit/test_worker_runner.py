"""The step runner against a recording publisher: results, failures, tasks, retries and replay."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.fakes import WORKER, RecordingPublisher

from grctl.models.common import ErrorDetails, RunInfo, RunStatus, utcnow
from grctl.models.directive import (
    Directive,
    DirectiveKind,
    Event,
    RetryPolicy,
    Start,
    Step,
    StepHeld,
)
from grctl.models.history import (
    HistoryEvent,
    HistoryKind,
    RandomRecorded,
    SleepRecorded,
    TaskAttemptFailed,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    TimestampRecorded,
    UuidRecorded,
)
from grctl.worker.context import Context
from grctl.worker.opid import operation_id
from grctl.worker.runner import ResultReport, StepRunner
from grctl.worker.task import task
from grctl.workflow import Workflow


def run_info(**extra: Any) -> RunInfo:
    return RunInfo(id="R1", wf_id="W1", wf_type="T", status=RunStatus.running,
                   created_at=datetime(2026, 1, 2, tzinfo=UTC), history_seq_id=7, **extra)


def start_task(payload: Any = None, **extra: Any) -> Directive:
    return Directive(id="D1", timestamp=utcnow(), kind=DirectiveKind.start, run_info=run_info(**extra),
                     msg=Start(input=payload, timeout_ms=1000))


def step_task(name: str) -> Directive:
    return Directive(id="D2", timestamp=utcnow(), kind=DirectiveKind.step, run_info=run_info(),
                     msg=Step(step_name=name, timeout_ms=1000))


def event_task(name: str, payload: Any = None) -> Directive:
    return Directive(id="D3", timestamp=utcnow(), kind=DirectiveKind.event, run_info=run_info(),
                     msg=Event(event_name=name, payload=payload))


async def execute(wf: Workflow, directive: Directive, history: list[HistoryEvent] | None = None,
                  kv: dict[str, bytes] | None = None,
                  expect: ResultReport = ResultReport.REPORTED) -> RecordingPublisher:
    pub = RecordingPublisher()
    runner = StepRunner(wf, directive, history or [], None, pub, logging.getLogger("test"))  # type: ignore[arg-type]

    async def load(key: str) -> bytes | None:
        return (kv or {}).get(key)

    runner.runtime.store._loader = load
    assert await runner.run() is expect
    return pub


def held(pub: RecordingPublisher) -> StepHeld:
    """The one report of a held task: no pick-up, no result, only ``step_held``."""
    assert pub.kinds == ["step_held"]
    msg = pub.directives[0].msg
    assert isinstance(msg, StepHeld)
    return msg


def hist(kind: HistoryKind, msg: object, op: str) -> HistoryEvent:
    return HistoryEvent(wf_id="W1", run_id="R1", worker_id="w_old", timestamp=utcnow(), kind=kind, msg=msg,
                        operation_id=op)


# --- results and failures ----------------------------------------------------------------------------

async def test_start_step_completes_and_echoes_run_info() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context, value: str) -> Directive:
        return ctx.next.complete(value + "!")

    pub = await execute(wf, start_task({"value": "ok"}, parent_wf_id="P", parent_callback_step="cb",
                                       timeout=30))
    assert pub.kinds == ["step_picked_up", "step_result"]
    picked = pub.directives[0]
    assert picked.msg.step_name == "start" and picked.msg.worker_id == WORKER
    r = pub.directives[1].run_info
    assert r.status == RunStatus.running and r.started_at is not None
    assert (r.parent_wf_id, r.parent_callback_step, r.timeout, r.history_seq_id) == ("P", "cb", 30, 7)
    assert r.created_at == datetime(2026, 1, 2, tzinfo=UTC)
    res = pub.result
    assert res.processed_msg_kind == "start" and res.next_msg_kind == "complete"
    assert res.next_msg.result == "ok!" and res.worker_id == WORKER and res.kv_updates == {}


async def test_step_result_carries_next_step_timeout_and_store_writes() -> None:
    wf = Workflow("T")

    @wf.step()
    async def first(ctx: Context) -> Directive:
        ctx.store.put("k", {"a": 1})
        directive = ctx.next.step(second)
        ctx.store.put("late", 2)
        return directive

    @wf.step(timeout=timedelta(seconds=3))
    async def second(ctx: Context) -> Directive:
        return ctx.next.complete(None)

    pub = await execute(wf, step_task("first"))
    res = pub.result
    assert res.processed_msg.step_name == "first"
    assert res.next_msg_kind == "step" and res.next_msg.step_name == "second"
    assert res.next_msg.timeout_ms == 3000
    assert res.kv_updates == {"k": {"a": 1}}
    assert pub.directives[-1].kv_revs == {"late": 2}
    assert pub.directives[-1].run_info.started_at is None  # only the start step sets it


async def test_wait_and_fail_builders() -> None:
    wf = Workflow("T")

    @wf.step()
    async def waits(ctx: Context) -> Directive:
        return ctx.next.wait(timeout=timedelta(milliseconds=100), on_timeout=waits)

    @wf.step()
    async def fails(ctx: Context) -> Directive:
        return ctx.next.fail(ErrorDetails(type="Bad", message="no"))

    res = (await execute(wf, step_task("waits"))).result
    assert res.next_msg_kind == "wait" and res.next_msg.timeout_ms == 100
    assert res.next_msg.timeout_step_name == "waits"
    res = (await execute(wf, step_task("fails"))).result
    assert res.next_msg_kind == "fail" and res.next_msg.error.type == "Bad"


async def test_uncaught_exception_becomes_fail_step_with_pending_writes() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context) -> Directive:
        ctx.store.put("seen", True)
        raise ValueError("workflow exploded")

    res = (await execute(wf, start_task())).result
    assert res.next_msg_kind == "fail_step"
    err = res.next_msg.error
    assert (res.next_msg.step_name, err.type, err.message) == ("start", "ValueError", "workflow exploded")
    assert "workflow exploded" in err.stack_trace and "Traceback" in err.stack_trace
    assert res.kv_updates == {"seen": True}


@pytest.mark.parametrize("directive", [step_task("nope"), event_task("nope")])
async def test_missing_handler_holds_the_task(directive: Directive) -> None:
    msg = held(await execute(Workflow("T"), directive, expect=ResultReport.HELD))
    assert (msg.step_name, msg.reason, msg.worker_id) == ("nope", "missing_handler", WORKER)
    assert "'nope'" in msg.detail


async def test_missing_start_handler_holds_the_task() -> None:
    msg = held(await execute(Workflow("T"), start_task(), expect=ResultReport.HELD))
    assert msg.step_name == "start" and "no start handler" in msg.detail


async def test_returning_something_else_is_next_directive_missing() -> None:
    wf = Workflow("T")

    @wf.step()
    async def oops(ctx: Context) -> Any:
        return "done"

    res = (await execute(wf, step_task("oops"))).result
    assert res.next_msg.error.type == "NextDirectiveMissingError"


async def test_parameters_that_do_not_bind_hold_the_task() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context, a: int, b: int) -> Directive:
        return ctx.next.complete(a + b)

    missing = held(await execute(wf, start_task({"a": 1}), expect=ResultReport.HELD))
    assert missing.reason == "unbound_parameters" and "KeyError" in missing.detail
    wrong = held(await execute(wf, start_task({"a": "x", "b": 1}), expect=ResultReport.HELD))
    assert "ValidationError" in wrong.detail
    assert (await execute(wf, start_task({"a": 1, "b": 2}))).result.next_msg.result == 3


async def test_events_route_to_event_handler_then_step_handler() -> None:
    wf = Workflow("T")

    @wf.event(name="approve")
    async def on_approve(ctx: Context, by: str = "nobody") -> Directive:
        return ctx.next.complete(f"approved by {by}")

    @wf.step()
    async def callback(ctx: Context, status: str) -> Directive:
        return ctx.next.complete(status)

    pub = await execute(wf, event_task("approve", {"by": "ann"}))
    assert pub.directives[0].msg.step_name == "approve"
    assert pub.result.processed_msg.event_name == "approve"
    assert pub.result.next_msg.result == "approved by ann"
    assert (await execute(wf, event_task("approve"))).result.next_msg.result == "approved by nobody"
    assert (await execute(wf, event_task("callback", {"status": "completed"}))).result.next_msg.result == \
        "completed"


async def test_step_runner_cancelled_publishes_nothing() -> None:
    wf = Workflow("T")
    started = asyncio.Event()

    @wf.step()
    async def slow(ctx: Context) -> Directive:
        started.set()
        await asyncio.sleep(60)
        return ctx.next.complete(None)

    pub = RecordingPublisher()
    runner = StepRunner(wf, step_task("slow"), [], None, pub, logging.getLogger("t"))  # type: ignore[arg-type]
    job = asyncio.create_task(runner.run())
    await started.wait()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert pub.kinds == ["step_picked_up"]


# --- tasks ---------------------------------------------------------------------------------------------

@task
async def echo_task(value: str) -> str:
    return value


async def test_task_events_and_operation_id() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context, value: str) -> Directive:
        return ctx.next.complete(await echo_task(value))

    pub = await execute(wf, start_task({"value": "ok"}))
    assert pub.result.next_msg.result == "ok"
    started, completed = pub.events
    assert (started.kind, completed.kind) == (HistoryKind.task_started, HistoryKind.task_completed)
    assert started.operation_id == completed.operation_id == "echo_task:70ba613566b271dc"
    assert started.msg.task_id == "echo_task:70ba613566b271dc" and started.msg.args == {"value": "ok"}
    assert completed.msg.output == {"result": "ok"} and completed.msg.step_name == "start"


async def test_task_outside_a_worker_just_runs() -> None:
    assert await echo_task("plain") == "plain"


def flaky_workflow(policy: RetryPolicy | None, error: type[Exception],
                   failures: int) -> tuple[Workflow, list]:
    calls: list[int] = []

    @task(retry_policy=policy)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error(f"attempt {len(calls)}")
        return "ok"

    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context) -> Directive:
        return ctx.next.complete(await flaky())

    return wf, calls


async def test_retry_then_success() -> None:
    wf, calls = flaky_workflow(RetryPolicy(max_attempts=3, initial_delay_ms=1, backoff_multiplier=1.0),
                               RuntimeError, 2)
    pub = await execute(wf, start_task())
    assert len(calls) == 3 and pub.result.next_msg.result == "ok"
    assert pub.task_kinds() == ["task.started", "task.attempt_failed", "task.attempt_failed",
                                "task.completed"]
    first = pub.events[1].msg
    assert (first.attempt, first.max_attempts, first.next_retry_delay_ms) == (1, 3, 1)
    assert first.error.qualified_type == "builtins.RuntimeError"


async def test_retries_exhausted() -> None:
    wf, calls = flaky_workflow(RetryPolicy(max_attempts=3, initial_delay_ms=1), RuntimeError, 99)
    pub = await execute(wf, start_task())
    assert len(calls) == 3
    assert pub.task_kinds() == ["task.started", "task.attempt_failed", "task.attempt_failed", "task.failed"]
    err = pub.result.next_msg.error
    assert (err.type, err.message) == ("RuntimeError", "attempt 3")


@pytest.mark.parametrize(("policy", "error", "calls_expected"), [
    (None, RuntimeError, 1),
    (RetryPolicy(max_attempts=3, initial_delay_ms=1, non_retryable_errors=["ValueError"]), ValueError, 1),
    (RetryPolicy(max_attempts=3, initial_delay_ms=1, retryable_errors=["TimeoutError"]), ValueError, 1),
])
async def test_retry_filters_stop_at_once(policy: RetryPolicy | None, error: type[Exception],
                                          calls_expected: int) -> None:
    wf, calls = flaky_workflow(policy, error, 99)
    pub = await execute(wf, start_task())
    assert len(calls) == calls_expected
    assert pub.task_kinds() == ["task.started", "task.failed"]
    assert pub.result.next_msg.error.type == error.__name__


async def test_cancelled_task_is_recorded_and_not_retried() -> None:
    calls: list[int] = []

    @task(retry_policy=RetryPolicy(max_attempts=3, initial_delay_ms=1))
    async def gives_up() -> None:
        calls.append(1)
        raise asyncio.CancelledError

    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context) -> Directive:
        try:
            await gives_up()
        except asyncio.CancelledError:
            return ctx.next.complete("cancelled")
        return ctx.next.complete("not reached")

    pub = await execute(wf, start_task())
    assert len(calls) == 1 and pub.task_kinds() == ["task.started", "task.cancelled"]
    assert pub.result.next_msg.result == "cancelled"


async def test_uncaught_task_cancellation_fails_the_step() -> None:
    @task
    async def gives_up() -> None:
        raise asyncio.CancelledError

    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context) -> Directive:
        await gives_up()
        return ctx.next.complete(None)

    pub = await execute(wf, start_task())
    assert pub.result.next_msg_kind == "fail_step"
    assert pub.result.next_msg.error.type == "CancelledError"


# --- replay --------------------------------------------------------------------------------------------

OP = "echo_task:70ba613566b271dc"


def task_started(op: str = OP) -> HistoryEvent:
    return hist(HistoryKind.task_started,
                TaskStarted(task_id=op, task_name="echo_task", args={"value": "ok"}, step_name="start"), op)


async def test_completed_task_is_replayed_not_run() -> None:
    calls: list[str] = []

    @task
    async def echo_task(value: str) -> datetime:
        calls.append(value)
        return utcnow()

    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context, value: str) -> Directive:
        when = await echo_task(value)
        assert isinstance(when, datetime)
        return ctx.next.complete(when)

    recorded = "2026-01-02T03:04:05Z"
    history = [task_started(), hist(HistoryKind.task_completed, TaskCompleted(
        task_id=OP, task_name="echo_task", output={"result": recorded}, step_name="start",
        duration_ms=1), OP)]
    pub = await execute(wf, start_task({"value": "ok"}), history)
    assert calls == [] and pub.events == []
    assert pub.kinds == ["step_result"]  # no second step_picked_up on a replaying execution
    assert pub.result.next_msg.result == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_failed_task_replays_as_its_exception() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context, value: str) -> Directive:
        return ctx.next.complete(await echo_task(value))

    err = ErrorDetails(type="ValueError", message="original error", qualified_type="builtins.ValueError")
    history = [task_started(), hist(HistoryKind.task_failed, TaskFailed(
        task_id=OP, task_name="echo_task", step_name="start", error=err, duration_ms=1), OP)]
    pub = await execute(wf, start_task({"value": "ok"}), history)
    assert pub.events == []
    assert (pub.result.next_msg.error.type, pub.result.next_msg.error.message) == \
        ("ValueError", "original error")


async def test_different_argument_is_nondeterministic() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context) -> Directive:
        return ctx.next.complete(await echo_task("world"))

    history = [task_started(), hist(HistoryKind.task_completed, TaskCompleted(
        task_id=OP, task_name="echo_task", output={"result": "ok"}, step_name="start", duration_ms=1), OP)]
    pub = await execute(wf, start_task(), history)
    assert pub.result.next_msg.error.type == "NonDeterminismError"
    assert pub.events == []


async def test_retry_budget_resumes_after_recorded_attempts() -> None:
    wf, calls = flaky_workflow(RetryPolicy(max_attempts=3, initial_delay_ms=1), RuntimeError, 99)
    op = operation_id("flaky", {}, 1)
    history = [
        hist(HistoryKind.task_started, TaskStarted(task_id=op, task_name="flaky", args={}, step_name="start"),
             op),
        hist(HistoryKind.task_attempt_failed, TaskAttemptFailed(
            task_id=op, task_name="flaky", step_name="start", attempt=1, max_attempts=3,
            error=ErrorDetails(type="RuntimeError"), next_retry_delay_ms=1, duration_ms=1), op),
    ]
    pub = await execute(wf, start_task(), history)
    assert len(calls) == 2  # attempts 2 and 3 only
    attempts = [e.msg.attempt for e in pub.events if e.kind == HistoryKind.task_attempt_failed]
    assert attempts == [2]
    assert pub.task_kinds()[-1] == "task.failed"


async def test_deterministic_helpers_record_then_replay() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context) -> Directive:
        now = await ctx.now()
        rnd = await ctx.random()
        uid = await ctx.uuid4()
        await ctx.sleep(timedelta(milliseconds=10))
        return ctx.next.complete({"now": now, "random": rnd, "uuid": str(uid)})

    live = await execute(wf, start_task())
    kinds = [e.kind for e in live.events]
    assert kinds == [HistoryKind.timestamp_recorded, HistoryKind.random_recorded, HistoryKind.uuid_recorded,
                     HistoryKind.sleep_recorded]
    assert live.events[3].msg == SleepRecorded(duration_ms=10)
    assert live.events[0].operation_id == "now:a19d3ea37811583f"
    assert live.events[1].operation_id == "random:ec2d5c3b183d53f6"

    replayed = await execute(wf, start_task(), live.events)
    assert replayed.events == []
    assert replayed.result.next_msg.result == live.result.next_msg.result


async def test_long_sleep_is_skipped_on_replay() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context) -> Directive:
        await ctx.sleep(timedelta(seconds=5))
        return ctx.next.complete("woke")

    op = operation_id("sleep", {"duration_ms": 5000}, 1)
    history = [hist(HistoryKind.sleep_recorded, SleepRecorded(duration_ms=5000), op)]
    res = (await asyncio.wait_for(execute(wf, start_task(), history), 2)).result
    assert res.next_msg.result == "woke"


async def test_replayed_values_are_the_recorded_ones() -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context) -> Directive:
        return ctx.next.complete([await ctx.now(), await ctx.random(), str(await ctx.uuid4())])

    when = datetime(2020, 5, 6, tzinfo=UTC)
    uid = "12345678-1234-5678-1234-567812345678"
    history = [
        hist(HistoryKind.timestamp_recorded, TimestampRecorded(value=when), operation_id("now", {}, 1)),
        hist(HistoryKind.random_recorded, RandomRecorded(value=0.25), operation_id("random", {}, 2)),
        hist(HistoryKind.uuid_recorded, UuidRecorded(value=uid), operation_id("uuid4", {}, 3)),
    ]
    res = (await execute(wf, start_task(), history)).result
    assert res.next_msg.result == [when, 0.25, uid]


async def test_store_get_reads_buffer_then_stream() -> None:
    from grctl.worker import StoreKeyNotFoundError, codec

    wf = Workflow("T")

    @wf.step()
    async def read(ctx: Context) -> Directive:
        ctx.store.put("mine", 1)
        try:
            await ctx.store.get("missing")
        except StoreKeyNotFoundError:
            missing = True
        return ctx.next.complete([await ctx.store.get("mine"), await ctx.store.get("saved", int), missing])

    res = (await execute(wf, step_task("read"), kv={"saved": codec.encode(41)})).result
    assert res.next_msg.result == [1, 41, True]
    assert res.kv_updates == {"mine": 1}


async def test_logger_is_silent_while_replaying(caplog: pytest.LogCaptureFixture) -> None:
    wf = Workflow("T")

    @wf.start()
    async def start(ctx: Context, value: str) -> Directive:
        ctx.logger.info("before %s", "task")
        result = await echo_task(value)
        ctx.logger.warning("after task")
        return ctx.next.complete(result)

    history = [task_started(), hist(HistoryKind.task_completed, TaskCompleted(
        task_id=OP, task_name="echo_task", output={"result": "ok"}, step_name="start", duration_ms=1), OP)]
    with caplog.at_level(logging.INFO, logger="test"):
        await execute(wf, start_task({"value": "ok"}), history)
    messages = [r.getMessage() for r in caplog.records if r.name == "test"]
    assert messages == ["after task"]  # the replayed part logged nothing
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test"):
        await execute(wf, start_task({"value": "ok"}))
    assert [r.getMessage() for r in caplog.records if r.name == "test"] == ["before task", "after task"]
    assert all(r.filename == "test_worker_runner.py" for r in caplog.records if r.name == "test")
