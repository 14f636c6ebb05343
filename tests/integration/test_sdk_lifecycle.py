"""SDK against a real engine and nats-server, worker in-process (docs/protocol.md#conformance-scenarios):
lifecycle (C1–C9), steps and timeouts (C3, C11–C13), events (C14–C17), cancel/terminate (C21–C23),
store (C33)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from support.sdk import StartWorker, kinds, step_kinds, wait_for, wait_history, workers
from ulid import ULID

from grctl.client.client import Client
from grctl.models import Directive
from grctl.models.common import RunStatus
from grctl.models.errors import (
    WorkflowAlreadyRunningError,
    WorkflowCancelledError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowRunFinishedError,
    WorkflowTerminatedError,
    WorkflowTypeNotRegisteredError,
)
from grctl.nats import direct
from grctl.worker import StoreKeyNotFoundError
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)




def wid() -> str:
    return f"wf-{ULID()}"


# --- C1–C5 -------------------------------------------------------------------------------------------

@task
async def echo_task(value: Any) -> Any:
    return value


basic = Workflow("Basic")


@basic.start()
async def basic_start(ctx: Context, value: Any = "ok") -> Directive:
    if value == "explode":
        raise ValueError("workflow exploded")
    if value == "two":
        return ctx.next.step(second)
    return ctx.next.complete(await echo_task(value))


@basic.step()
async def second(ctx: Context) -> Directive:
    return ctx.next.complete("two-step-ok")


async def test_c1_completing_workflow(client: Client, start_worker: StartWorker) -> None:
    await start_worker(basic)
    wf_id = wid()
    handle = await client.start_workflow("Basic", wf_id, {"value": "ok"})
    assert handle.run_info.wf_id == wf_id and handle.run_info.wf_type == "Basic"
    assert len(handle.run_info.id) == 26
    assert await handle.result(timeout=10) == "ok"
    history = await client.get_history(wf_id)
    assert kinds(history, "run.") == ["run.started", "run.completed"]
    assert step_kinds(history) == [("step.started", "start"), ("step.completed", "start")]
    # C4: the task of the start step and its operation id
    tasks = [e for e in history if str(e.kind).startswith("task.")]
    assert [str(e.kind) for e in tasks] == ["task.started", "task.completed"]
    assert {e.msg.task_id for e in tasks} == {"echo_task:70ba613566b271dc"}
    assert tasks[0].msg.args == {"value": "ok"} and tasks[1].msg.output == {"result": "ok"}
    assert (await client.describe(wf_id)).status == RunStatus.completed


async def test_c2_failing_start_step(client: Client, start_worker: StartWorker) -> None:
    await start_worker(basic)
    wf_id = wid()
    with pytest.raises(WorkflowError, match="ValueError: workflow exploded"):
        await client.run_workflow("Basic", wf_id, {"value": "explode"}, timeout=10)
    history = await client.get_history(wf_id)
    failed = [e for e in history if str(e.kind) == "step.failed"]
    assert [k for k, _ in step_kinds(history)] == ["step.started", "step.failed"]
    assert failed[0].msg.error.type == "ValueError"
    assert "workflow exploded" in failed[0].msg.error.stack_trace
    run_failed = next(e for e in history if str(e.kind) == "run.failed")
    assert run_failed.msg.error.type == "ValueError" and run_failed.msg.error.message == "workflow exploded"


async def test_c3_multi_step(client: Client, start_worker: StartWorker) -> None:
    await start_worker(basic)
    wf_id = wid()
    assert await client.run_workflow("Basic", wf_id, {"value": "two"}, timeout=10) == "two-step-ok"
    assert step_kinds(await client.get_history(wf_id)) == [
        ("step.started", "start"), ("step.completed", "start"),
        ("step.started", "second"), ("step.completed", "second")]


async def test_one_step_slot_serves_every_workflow_type(client: Client, engine: Any, nats_url: str) -> None:
    """Two types, one slot: the type whose queue is empty must not keep the slot from the other."""
    other = Workflow("OtherType")

    @other.start()
    async def other_start(ctx: Context) -> Directive:
        return ctx.next.complete("other-ok")

    for first in (other, basic):  # whichever type's loop takes the slot first
        async with workers(nats_url) as start:
            await start(first, *({other, basic} - {first}), max_concurrent_steps=1)
            assert await client.run_workflow("Basic", wid(), {"value": "two"}, timeout=10) == "two-step-ok"
            assert await client.run_workflow("OtherType", wid(), timeout=10) == "other-ok"


@pytest.mark.parametrize("value", ["hello", 42, 3.5, True, None,
                                   {"name": "dict-case", "count": 3, "tags": ["a", "b"],
                                    "nested": {"enabled": True}},
                                   ["list-case", 3, {"enabled": True}]])
async def test_c5_payload_fidelity(client: Client, start_worker: StartWorker, value: Any) -> None:
    await start_worker(basic)
    result = await client.run_workflow("Basic", wid(), {"value": value}, timeout=10)
    assert result == value and type(result) is type(value)


async def test_c6_c7_c8_api_errors(client: Client, start_worker: StartWorker) -> None:
    waiting = Workflow("Waiting")

    @waiting.start()
    async def w_start(ctx: Context) -> Directive:
        return ctx.next.wait()

    @waiting.event()
    async def finish(ctx: Context, result: str = "done") -> Directive:
        return ctx.next.complete(result)

    await start_worker(waiting)
    wf_id = wid()
    handle = await client.start_workflow("Waiting", wf_id)
    await wait_history(client, wf_id, "wait.started")
    with pytest.raises(WorkflowAlreadyRunningError):
        await client.start_workflow("Waiting", wf_id)
    with pytest.raises(WorkflowTypeNotRegisteredError):
        await client.start_workflow("NobodyServesThis", wid())
    with pytest.raises(WorkflowNotFoundError):
        await client.describe(wid())
    with pytest.raises(WorkflowNotFoundError):
        await client.get_workflow_handle(wid())
    described = await client.describe(wf_id)
    assert (described.id, described.status) == (handle.run_id, RunStatus.running)
    # C9: attach, send through the attached handle, both futures resolve
    attached = await client.get_workflow_handle(wf_id)
    assert attached.run_id == handle.run_id
    await attached.send("finish", {"result": "approved"})
    assert await handle.result(timeout=10) == "approved"
    assert await attached.result(timeout=10) == "approved"
    late = await client.get_handle(wf_id)
    assert await late.result(timeout=5) == "approved"
    # C24 from the client: commands on a finished run raise
    for call in (lambda: handle.send("finish"), lambda: handle.cancel(), lambda: handle.terminate()):
        with pytest.raises(WorkflowRunFinishedError):
            await call()
    # C6: a new run of the same id after the first ended
    second_run = await client.start_workflow("Waiting", wf_id)
    assert second_run.run_id != handle.run_id
    await wait_history(client, wf_id, "wait.started")
    await second_run.send("finish")
    assert await second_run.result(timeout=10) == "done"
    assert all(e.run_id == second_run.run_id for e in await client.get_history(wf_id))


async def test_invalid_names_are_refused_by_the_client(client: Client) -> None:
    with pytest.raises(ValueError):
        await client.start_workflow("Basic", "has.dot")
    with pytest.raises(ValueError):
        await client.start_workflow("bad type", wid())


# --- steps and timeouts (C11–C13) ----------------------------------------------------------------------

async def test_c11_step_timeout_terminates_the_step(client: Client, start_worker: StartWorker) -> None:
    wf = Workflow("Blocking")
    cancelled = asyncio.Event()

    @wf.start()
    async def b_start(ctx: Context) -> Directive:
        return ctx.next.step(blocking_step)

    @wf.step(timeout=timedelta(milliseconds=100))
    async def blocking_step(ctx: Context) -> Directive:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ctx.next.complete("never")

    worker = await start_worker(wf)
    wf_id = wid()
    with pytest.raises(WorkflowError, match="StepTimeout: step blocking_step timed out"):
        await client.run_workflow("Blocking", wf_id, timeout=10)
    await asyncio.wait_for(cancelled.wait(), 5)  # worker.terminate_run reached the worker

    async def idle() -> bool:  # the stopped step has settled: it can write nothing more
        return worker.running_steps == 0

    await wait_for(idle, 5)
    history = await client.get_history(wf_id)
    assert step_kinds(history) == [("step.started", "start"), ("step.completed", "start"),
                                   ("step.started", "blocking_step"), ("step.timeout", "blocking_step")]
    assert kinds(history, "run.") == ["run.started", "run.failed"]


async def test_c12_start_step_timeout(client: Client, start_worker: StartWorker) -> None:
    wf = Workflow("SlowStart")

    @wf.start(timeout=timedelta(milliseconds=500))
    async def s_start(ctx: Context) -> Directive:
        await asyncio.sleep(60)
        return ctx.next.complete(None)

    await start_worker(wf)
    wf_id = wid()
    with pytest.raises(WorkflowError, match="StepTimeout"):
        await client.run_workflow("SlowStart", wf_id, timeout=10)
    history = await client.get_history(wf_id)
    assert step_kinds(history) == [("step.started", "start"), ("step.timeout", "start")]


async def test_c13_no_spurious_timeout(client: Client, start_worker: StartWorker) -> None:
    wf = Workflow("Quick")

    @wf.start(timeout=timedelta(milliseconds=800))
    async def q_start(ctx: Context) -> Directive:
        return ctx.next.step(quick)

    @wf.step(timeout=timedelta(milliseconds=800))
    async def quick(ctx: Context) -> Directive:
        return ctx.next.complete("fine")

    await start_worker(wf)
    wf_id = wid()
    assert await client.run_workflow("Quick", wf_id, timeout=10) == "fine"
    # Every step timer was cancelled by the commit that left its step: none is left to fire.
    assert await direct.read_subject(client.connection.nc, f"grctl_timers.{wf_id}.step_timeout.>") == []
    history = await client.get_history(wf_id)
    assert "step.timeout" not in kinds(history)
    assert kinds(history, "run.") == ["run.started", "run.completed"]


# --- events, waits, cancel and terminate (C14–C23) ---------------------------------------------------

events_wf = Workflow("Events")


@events_wf.start()
async def ev_start(ctx: Context) -> Directive:
    return ctx.next.wait()


@events_wf.event()
async def approve(ctx: Context) -> Directive:
    return ctx.next.complete("approve")


@events_wf.event()
async def first_event(ctx: Context) -> Directive:
    return ctx.next.wait()


@events_wf.event()
async def second_event(ctx: Context, value: Any = None) -> Directive:
    return ctx.next.complete(value if value is not None else "done-after-second")


@events_wf.event()
async def slow(ctx: Context, seconds: float) -> Directive:
    await asyncio.sleep(seconds)
    return ctx.next.complete("slow-done")


@task
async def nap(seconds: float) -> None:
    await asyncio.sleep(seconds)


@events_wf.event()
async def slow_task(ctx: Context, seconds: float) -> Directive:
    await nap(seconds)
    return ctx.next.complete("slow-task-done")


async def test_c14_to_c17_events(client: Client, start_worker: StartWorker) -> None:
    await start_worker(events_wf)
    routed = await client.start_workflow("Events", wid())
    await routed.send("approve")  # C15: possibly before the wait; consumed once the run waits
    assert await routed.result(timeout=10) == "approve"

    loop_id = wid()
    looping = await client.start_workflow("Events", loop_id)
    await wait_history(client, loop_id, "wait.started")
    await looping.send("first_event")
    await looping.send("second_event", {"value": {"nested": [1, 2.5, None]}})
    assert await looping.result(timeout=10) == {"nested": [1, 2.5, None]}
    history = await client.get_history(loop_id)
    assert kinds(history).count("wait.started") == 2
    received = [e for e in history if str(e.kind) == "event.received"]
    assert received[1].msg.payload == {"value": {"nested": [1, 2.5, None]}}


async def test_c21_c22_c23_cancel_and_terminate(client: Client, start_worker: StartWorker) -> None:
    worker = await start_worker(events_wf)
    waiting = await client.start_workflow("Events", wid())
    await wait_history(client, waiting.wf_id, "wait.started")
    await waiting.cancel(reason="no longer needed")
    with pytest.raises(WorkflowCancelledError):
        await waiting.result(timeout=10)
    assert (await client.describe(waiting.wf_id)).status == RunStatus.cancelled

    deferred = await client.start_workflow("Events", wid())
    await wait_history(client, deferred.wf_id, "wait.started")
    await deferred.send("slow", {"seconds": 1.0})
    await wait_history(client, deferred.wf_id, "step.started", step="slow")
    await deferred.cancel()
    with pytest.raises(asyncio.CancelledError):
        await deferred.result(timeout=10)
    history = kinds(await client.get_history(deferred.wf_id))
    assert history.index("run.cancel_received") < history.index("run.cancelled")
    assert "run.completed" not in history

    terminated = await client.start_workflow("Events", wid())
    await wait_history(client, terminated.wf_id, "wait.started")
    await terminated.send("slow", {"seconds": 60})
    await wait_history(client, terminated.wf_id, "step.started", step="slow")
    await terminated.terminate(reason="stop it")
    with pytest.raises(WorkflowTerminatedError):
        await terminated.result(timeout=10)
    described = await client.describe(terminated.wf_id)
    assert described.status == RunStatus.terminated  # decoded, unlike SDK 0.3.0

    async def gone() -> bool:
        return terminated.run_id not in worker._dispatcher.running_runs

    await wait_for(gone, 5)


async def test_a_terminated_run_is_seen_ended_despite_a_late_worker_event(
        client: Client, start_worker: StartWorker) -> None:
    """The worker stopped by a terminate writes ``task.cancelled`` after ``run.terminated``: a handle
    attached afterwards must still see the run ended (the public SDK's never resolves)."""
    await start_worker(events_wf)
    run = await client.start_workflow("Events", wid())
    await wait_history(client, run.wf_id, "wait.started")
    await run.send("slow_task", {"seconds": 60})
    await wait_history(client, run.wf_id, "task.started")
    await run.terminate(reason="stop it")
    history = await wait_history(client, run.wf_id, "task.cancelled")
    assert kinds(history).index("run.terminated") < kinds(history).index("task.cancelled")
    attached = await client.get_workflow_handle(run.wf_id)
    with pytest.raises(WorkflowTerminatedError):
        await attached.result(timeout=10)


# --- store (C33) ------------------------------------------------------------------------------------------

class Point(msgspec.Struct):
    x: int
    y: int


store_wf = Workflow("Store")


@store_wf.start()
async def st_start(ctx: Context, value: Any) -> Directive:
    ctx.store.put("key", value)
    ctx.store.put("point", Point(1, 2))
    return ctx.next.step(read_step)


@store_wf.step()
async def read_step(ctx: Context) -> Directive:
    point = await ctx.store.get("point", Point)
    assert isinstance(point, Point)
    try:
        await ctx.store.get("never-written")
        missing = False
    except StoreKeyNotFoundError:
        missing = True
    return ctx.next.complete({"value": await ctx.store.get("key"), "point": [point.x, point.y],
                              "missing": missing})


@pytest.mark.parametrize("value", ["hello", 7, 2.5, False, [1, "a"], {"k": {"n": 1}}])
async def test_c33_store_across_steps(client: Client, start_worker: StartWorker, value: Any) -> None:
    await start_worker(store_wf)
    result = await client.run_workflow("Store", wid(), {"value": value}, timeout=10)
    assert result == {"value": value, "point": [1, 2], "missing": True}


async def test_run_workflow_timeout(client: Client, start_worker: StartWorker) -> None:
    await start_worker(events_wf)
    wf_id = wid()
    with pytest.raises(TimeoutError):
        await client.run_workflow("Events", wf_id, timeout=timedelta(milliseconds=500))
    info = await client.describe(wf_id)
    assert info.timeout == 1  # the run-level timeout travels as whole seconds
