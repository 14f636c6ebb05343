"""Cancel and terminate (C21–C23) and the child-completion callback (C35) through a real engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from support.fake_worker import FakeWorker

from grctl.engine import Engine
from grctl.models import CommandKind, DirectiveKind, HistoryKind, RunStatus, decode_command
from grctl.models.command import CancelCmd, TerminateCmd
from grctl.nats import subjects
from grctl.nats.connection import Connection

H = HistoryKind


@pytest.fixture
async def worker(connection: Connection, engine: Engine) -> AsyncIterator[FakeWorker]:
    w = FakeWorker(connection)
    assert (await w.register("Can")).success
    yield w


async def cancel(worker: FakeWorker, wf_id: str, reason: str = "stop") -> None:
    resp = await worker.request(subjects.api_workflow(wf_id), CommandKind.run_cancel,
                                CancelCmd(wf_id=wf_id, reason=reason))
    assert resp.success, resp


async def test_c21_cancel_while_waiting(worker: FakeWorker) -> None:
    _, info = await worker.start("Can", "wf-c21")
    task = await worker.next_task("Can")
    await worker.result(task, "wait", {"timeout_ms": 0, "timeout_step_name": ""})
    await worker.wait_history("wf-c21", info.id, H.wait_started)
    await cancel(worker, "wf-c21", "no longer needed")
    events = await worker.wait_history("wf-c21", info.id, H.run_cancelled)
    assert H.run_cancel_received not in [e.kind for e in events]
    assert events[-1].msg.reason == "no longer needed"
    assert (await worker.run_info("wf-c21")).status == RunStatus.cancelled


async def test_c22_cancel_during_a_step_waits_for_its_result(worker: FakeWorker) -> None:
    _, info = await worker.start("Can", "wf-c22")
    task = await worker.next_task("Can")
    await worker.picked_up(task, "start")
    await cancel(worker, "wf-c22")
    await worker.wait_history("wf-c22", info.id, H.run_cancel_received)
    await worker.result(task, "complete", {"result": "ignored"})
    events = await worker.wait_history("wf-c22", info.id, H.run_cancelled)
    kinds = [e.kind for e in events]
    assert kinds == [H.run_started, H.step_started, H.run_cancel_received, H.step_completed, H.run_cancelled]


async def test_c23_terminate_during_a_step_tells_the_worker(worker: FakeWorker) -> None:
    commands: asyncio.Queue = asyncio.Queue()

    async def on_command(msg) -> None:
        await commands.put(decode_command(msg.data))
        await msg.respond(b"\x81\xa7success\xc3")

    sub = await worker.nc.subscribe(subjects.worker_cmd(worker.worker_id), cb=on_command)
    _, info = await worker.start("Can", "wf-c23")
    task = await worker.next_task("Can")
    await worker.picked_up(task, "start")
    await worker.wait_history("wf-c23", info.id, H.step_started)
    resp = await worker.request(subjects.api_workflow("wf-c23"), CommandKind.run_terminate,
                                TerminateCmd(wf_id="wf-c23", reason="enough"))
    assert resp.success
    events = await worker.wait_history("wf-c23", info.id, H.run_terminated)
    assert [e.kind for e in events] == [H.run_started, H.step_started, H.run_terminated]
    cmd = await asyncio.wait_for(commands.get(), timeout=5)
    assert cmd.kind == "worker.terminate_run" and cmd.msg.run_id == info.id
    assert (await worker.run_info("wf-c23")).status == RunStatus.terminated
    await sub.unsubscribe()


async def test_c35_child_completion_reaches_the_waiting_parent(worker: FakeWorker) -> None:
    _, parent = await worker.start("Can", "wf-parent")
    ptask = await worker.next_task("Can")
    await worker.result(ptask, "wait", {"timeout_ms": 0, "timeout_step_name": ""})
    await worker.wait_history("wf-parent", parent.id, H.wait_started)
    _, child = await worker.start("Can", "wf-parent-child", parent_wf_id="wf-parent", parent_wf_type="Can",
                                  parent_run_id=parent.id, parent_callback_step="on_done")
    ctask = await worker.next_task("Can")
    assert ctask.run_info.parent_run_id == parent.id
    await worker.result(ctask, "complete", {"result": "child-result"})
    step = await worker.next_task("Can")
    assert step.kind == DirectiveKind.event and step.msg.event_name == "on_done"
    assert step.run_info.id == parent.id
    assert step.msg.payload == {"status": "completed", "result": "child-result", "error": None}
    events = await worker.history("wf-parent", parent.id)
    received = [e for e in events if e.kind == H.event_received]
    assert received[0].msg.event_name == "on_done"
    assert (await worker.kinds("wf-parent-child", child.id))[-1] == H.run_completed
