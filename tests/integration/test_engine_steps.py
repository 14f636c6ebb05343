"""The engine driven by a fake worker: next steps, failures, waits, events, step/wait/run timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from support.fake_worker import FakeWorker, eventually

from grctl.engine import Engine
from grctl.models import (
    Directive,
    DirectiveKind,
    EventDef,
    HistoryKind,
    RunStatus,
    WaitTimeout,
    decode_command,
    utcnow,
)
from grctl.models.command import EventCmd
from grctl.nats import subjects
from grctl.nats.connection import Connection

H = HistoryKind
ERROR = {"type": "ValueError", "message": "workflow exploded", "stack_trace": "tb", "qualified_type": ""}


@pytest.fixture
async def worker(connection: Connection, engine: Engine) -> AsyncIterator[FakeWorker]:
    w = FakeWorker(connection)
    assert (await w.register("Flow", events=[EventDef(name="finish", timeout_ms=4000)])).success
    yield w


async def test_step_result_with_next_step_then_complete(worker: FakeWorker) -> None:
    _, info = await worker.start("Flow", "wf-steps")
    start = await worker.next_task("Flow")
    await worker.picked_up(start, "start")
    await worker.result(start, "step", {"step_name": "second", "timeout_ms": 10000}, kv={"key": "hello"})
    second = await worker.next_task("Flow")
    assert second.kind == DirectiveKind.step and second.msg.step_name == "second"
    events = await worker.history("wf-steps", info.id)
    assert events[-1].kind == H.step_completed
    assert second.run_info.history_seq_id == events[-2].seq + 1, "last history sequence at planning + 1"
    stored = await worker.count(subjects.kv("wf-steps", info.id, "key"))
    assert stored == 1
    await worker.picked_up(second, "second")
    await worker.result(second, "complete", {"result": "two-step-ok"})
    events = await worker.wait_history("wf-steps", info.id, H.run_completed)
    assert [(e.kind, getattr(e.msg, "step_name", "")) for e in events if e.kind.startswith("step.")] == [
        (H.step_started, "start"), (H.step_completed, "start"), (H.step_started, "second"),
        (H.step_completed, "second")]


async def test_fail_step_fails_the_run(worker: FakeWorker) -> None:
    _, info = await worker.start("Flow", "wf-fail")
    start = await worker.next_task("Flow")
    await worker.picked_up(start, "start")
    await worker.result(start, "fail_step", {"step_name": "start", "error": ERROR})
    events = await worker.wait_history("wf-fail", info.id, H.run_failed)
    assert [e.kind for e in events] == [H.run_started, H.step_started, H.step_failed, H.run_failed]
    assert events[-1].msg.error.type == "ValueError" and events[-1].msg.error == events[2].msg.error
    assert (await worker.run_info("wf-fail")).status == RunStatus.failed


async def test_step_timeout_fails_the_run_and_tells_the_worker(connection: Connection,
                                                               engine: Engine) -> None:
    worker = FakeWorker(connection)
    await worker.register("Slow", start_step_timeout_ms=500)
    commands: asyncio.Queue = asyncio.Queue()

    async def on_command(msg) -> None:
        await commands.put(decode_command(msg.data))
        # The public SDK's reply bytes, which are not valid msgpack: the engine must not decode them.
        await msg.respond(bytes.fromhex("83a7") + b"success" + b"\xc3\xa7payload\xa5error\xc0")

    sub = await connection.nc.subscribe(subjects.worker_cmd(worker.worker_id), cb=on_command)
    _, info = await worker.start("Slow", "wf-slow")
    start = await worker.next_task("Slow")
    assert start.msg.timeout_ms == 500
    await worker.picked_up(start, "start")
    events = await worker.wait_history("wf-slow", info.id, H.run_failed, timeout=5)
    assert [e.kind for e in events] == [H.run_started, H.step_started, H.step_timeout, H.run_failed]
    assert events[2].msg.step_name == "start"
    assert (events[3].msg.error.type, events[3].msg.error.message) == ("StepTimeout", "step start timed out")
    cmd = await asyncio.wait_for(commands.get(), timeout=5)
    assert cmd.kind == "worker.terminate_run" and cmd.msg.run_id == info.id and cmd.sender_id.startswith("s:")
    await sub.unsubscribe()


async def test_wait_then_event_and_the_left_wait_timer_never_fails_the_run(worker: FakeWorker) -> None:
    _, info = await worker.start("Flow", "wf-wait")
    start = await worker.next_task("Flow")
    await worker.picked_up(start, "start")
    await worker.result(start, "wait", {"timeout_ms": 300, "timeout_step_name": ""})
    await worker.wait_history("wf-wait", info.id, H.wait_started)
    resp = await worker.request(subjects.api_workflow("wf-wait"), "run.event",
                                EventCmd(wf_id="wf-wait", event_name="finish",
                                         payload={"result": "approved"}))
    assert resp.success
    step = await worker.next_task("Flow")
    assert step.kind == DirectiveKind.event and step.msg.event_name == "finish"
    assert step.msg.payload == {"result": "approved"} and step.msg.timeout_ms == 4000
    # The wait timer was cancelled when the run left the wait: its schedule is gone.
    assert await worker.count("grctl_timers.wf-wait.wait_timeout.>") == 0
    # A stale wait timeout (e.g. one that fired anyway) is a no-op.
    stale = Directive(id="stale-1", timestamp=utcnow(), kind=DirectiveKind.wait_timeout,
                      run_info=step.run_info,
                      msg=WaitTimeout(timeout_step_name="", original_directive_id=start.id))
    await worker.publish_directive(stale)
    await worker.picked_up(step, "finish")
    await worker.result(step, "complete", {"result": "approved"})
    events = await worker.wait_history("wf-wait", info.id, H.run_completed)
    kinds = [e.kind for e in events]
    assert kinds == [H.run_started, H.step_started, H.step_completed, H.wait_started, H.event_received,
                     H.step_started, H.step_completed, H.run_completed]


async def test_wait_timeout_runs_the_timeout_step(worker: FakeWorker) -> None:
    _, info = await worker.start("Flow", "wf-wt")
    start = await worker.next_task("Flow")
    await worker.result(start, "wait", {"timeout_ms": 100, "timeout_step_name": "on_timeout"})
    step = await worker.next_task("Flow", timeout=5)
    assert step.kind == DirectiveKind.step and step.msg.step_name == "on_timeout"
    kinds = await worker.kinds("wf-wt", info.id)
    assert kinds[-2:] == [H.wait_started, H.wait_timed_out]


async def test_event_before_the_wait_is_delivered_when_the_run_waits(worker: FakeWorker) -> None:
    _, info = await worker.start("Flow", "wf-early")
    await worker.request(subjects.api_workflow("wf-early"), "run.event",
                         EventCmd(wf_id="wf-early", event_name="finish", payload=None))
    start = await worker.next_task("Flow")
    await worker.wait_history("wf-early", info.id, H.event_received)
    await worker.result(start, "wait", {"timeout_ms": 0, "timeout_step_name": ""})
    step = await worker.next_task("Flow")
    assert step.kind == DirectiveKind.event and step.msg.event_name == "finish"


async def test_run_timeout_ends_a_run_that_takes_too_long(worker: FakeWorker) -> None:
    _, info = await worker.start("Flow", "wf-rt", timeout=1)
    start = await worker.next_task("Flow")
    await worker.picked_up(start, "start")
    events = await worker.wait_history("wf-rt", info.id, H.run_timeout, timeout=5)
    assert [e.kind for e in events] == [H.run_started, H.step_started, H.run_timeout]
    assert events[-1].msg.duration_ms >= 900
    assert (await worker.run_info("wf-rt")).status == RunStatus.timed_out


async def test_run_timeout_is_cancelled_when_the_run_ends_first(worker: FakeWorker) -> None:
    _, info = await worker.start("Flow", "wf-rt2", timeout=1)
    start = await worker.next_task("Flow")
    await worker.result(start, "complete", {"result": 1})
    await worker.wait_history("wf-rt2", info.id, H.run_completed)

    async def gone() -> bool:
        return await worker.count("grctl_timers.wf-rt2.run_timeout.>") == 0

    await eventually(gone)  # the terminal commit removed the run's timer: it can no longer fire
    assert (await worker.kinds("wf-rt2", info.id))[-1] == H.run_completed
    assert await worker.count(subjects.TIMERS_FIRED) == 0


async def test_a_transition_too_large_for_one_batch_fails_the_run(worker: FakeWorker) -> None:
    _, info = await worker.start("Flow", "wf-huge")
    start = await worker.next_task("Flow")
    await worker.result(start, "complete", {"result": 1}, kv={f"k{i}": i for i in range(1000)})
    events = await worker.wait_history("wf-huge", info.id, H.run_failed)
    assert events[-1].msg.error.type == "UnexpectedFailure"
    assert "more than an atomic batch may hold" in events[-1].msg.error.message
