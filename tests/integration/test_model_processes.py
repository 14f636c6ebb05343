"""The workflow model with every part in its own process (nats-server, ``grctl engine``, a worker):
events and the inbox (C14–C17), wait timeouts and stale wait timers (C18, C13), terminate stopping
the step on the worker (C23), and how a child's end reaches the parent's callback (C35, C40)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.processes import WorkerProcess, worker_env
from support.sdk import kinds, step_kinds, wait_for, wait_history

from grctl.client.client import Client
from grctl.models import Directive, DirectiveKind, WaitTimeout, encode_directive, utcnow
from grctl.models.errors import WorkflowTerminatedError
from grctl.nats import jetstream as jsops
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.workflow.handle import WorkflowHandle

pytestmark = pytest.mark.timeout(60)


@dataclass
class Model:
    client: Client
    dir: Path

    def release(self, wf_id: str) -> None:
        (self.dir / f"{wf_id}.release").touch()

    async def stopped_at(self, wf_id: str) -> float:
        """When the worker saw the step of ``wf_id`` cancelled (``time.time()``)."""
        marker = self.dir / f"{wf_id}.cancelled"

        async def written() -> bool:
            return marker.exists() and bool(marker.read_text())

        await wait_for(written, 5)
        return float(marker.read_text())

    async def handle(self, wf_id: str) -> WorkflowHandle:
        return await self.client.get_workflow_handle(wf_id)


@pytest.fixture
async def model(engine_process: subprocess.Popen, subprocess_env: dict[str, str], connection: Connection,
                tmp_path: Path) -> AsyncIterator[Model]:
    worker = WorkerProcess("support.wf_model", worker_env(subprocess_env, GRCTL_TEST_DIR=tmp_path)).start()
    try:
        await worker.ready()
        yield Model(Client(connection), tmp_path)
    finally:
        worker.kill()  # nothing to check about its shutdown; a graceful one waits for its fetches


def first(history_kinds: list[str], kind: str) -> int:
    return history_kinds.index(kind)


# --- events and the inbox --------------------------------------------------------------------------


async def test_an_event_sent_while_a_step_runs_is_handled_after_the_step(model: Model) -> None:
    client = model.client
    handle = await client.start_workflow("Inbox", "inbox-during", {"expect": 1, "hold": True})
    await wait_history(client, "inbox-during", "step.started", step="start")
    await handle.send("record", {"n": 7})
    recorded = await wait_history(client, "inbox-during", "event.received")
    assert "step.completed" not in kinds(recorded), "recorded at once, while the step still runs"
    model.release("inbox-during")
    assert await handle.result(timeout=10) == [7]
    history = await client.get_history("inbox-during")
    assert step_kinds(history) == [("step.started", "start"), ("step.completed", "start"),
                                   ("step.started", "record"), ("step.completed", "record")]
    k = kinds(history)
    assert first(k, "event.received") < first(k, "step.completed") < first(k, "wait.started")


async def test_events_sent_back_to_back_are_all_handled_in_order(model: Model) -> None:
    client = model.client
    # Five events at once to a waiting run: each wait takes the oldest one, the rest wait in the inbox.
    waiting = await client.start_workflow("Inbox", "inbox-burst", {"expect": 5})
    await wait_history(client, "inbox-burst", "wait.started")
    for n in range(1, 6):
        await waiting.send("record", {"n": n})
    # Two events while the start step still runs: both are handled once the run waits.
    held = await client.start_workflow("Inbox", "inbox-held", {"expect": 2, "hold": True})
    await wait_history(client, "inbox-held", "step.started", step="start")
    await held.send("record", {"n": 1})
    await held.send("record", {"n": 2})
    model.release("inbox-held")
    assert await waiting.result(timeout=15) == [1, 2, 3, 4, 5]
    assert await held.result(timeout=15) == [1, 2]
    history = await client.get_history("inbox-burst")
    assert kinds(history).count("wait.started") == 5
    assert [e.msg.payload["n"] for e in history if str(e.kind) == "event.received"] == [1, 2, 3, 4, 5]
    started = [name for kind, name in step_kinds(history) if kind == "step.started"]
    assert started == ["start"] + ["record"] * 5


async def test_c14_c16_events_are_routed_and_recorded_in_order(model: Model) -> None:
    client = model.client
    runs = {wf_id: await client.start_workflow("Inbox", wf_id)
            for wf_id in ("ev-payload", "ev-default", "ev-approve", "ev-reject")}
    for wf_id in runs:
        await wait_history(client, wf_id, "wait.started")
    await runs["ev-payload"].send("finish", {"result": "approved"})
    await runs["ev-default"].send("finish")
    await runs["ev-approve"].send("approve")
    await runs["ev-reject"].send("reject")
    results = {wf_id: await handle.result(timeout=10) for wf_id, handle in runs.items()}
    assert results == {"ev-payload": "approved", "ev-default": "done", "ev-approve": "approve",
                       "ev-reject": "reject"}
    history = await client.get_history("ev-payload")
    k = kinds(history)
    tail = k[first(k, "wait.started"):]
    assert tail == ["wait.started", "event.received", "step.started", "step.completed", "run.completed"]
    assert step_kinds(history)[-2:] == [("step.started", "finish"), ("step.completed", "finish")]
    received = next(e for e in history if str(e.kind) == "event.received")
    assert (received.msg.event_name, received.msg.payload) == ("finish", {"result": "approved"})


# --- wait timeouts ------------------------------------------------------------------------------------


async def test_a_wait_timeout_fires_its_step(model: Model) -> None:
    client = model.client
    assert await client.run_workflow("Timed", "timed-out", timeout=10) == "timed_out"
    history = await client.get_history("timed-out")
    k = kinds(history)
    assert first(k, "wait.started") < first(k, "wait.timed_out") < len(k) - 1
    assert step_kinds(history)[-2:] == [("step.started", "on_timeout"), ("step.completed", "on_timeout")]


async def test_a_stale_wait_timer_after_the_run_moved_on_does_nothing(model: Model,
                                                                      connection: Connection) -> None:
    client = model.client
    handle = await client.start_workflow("Timed", "timed-stale")
    history = await wait_history(client, "timed-stale", "wait.started")
    wait_started = next(e for e in history if str(e.kind) == "wait.started")
    await handle.send("go")
    await wait_history(client, "timed-stale", "step.started", step="linger")
    # The wait timer (300 ms) expires while `linger` runs (800 ms). Had it fired anyway, its
    # directive would look like this one: it must change nothing.
    info = await client.describe("timed-stale")
    stale = Directive(id="stale-wait-timeout", timestamp=utcnow(), kind=DirectiveKind.wait_timeout,
                      run_info=info, msg=WaitTimeout(timeout_step_name="on_timeout",
                                                     original_directive_id=wait_started.msg.directive_id))
    await jsops.publish(connection.nc, subjects.directive("Timed", "timed-stale", info.id),
                        encode_directive(stale))
    assert await handle.result(timeout=10) == "went"

    async def drained() -> bool:  # the stale directive has been processed
        ci = await connection.js.consumer_info(subjects.STREAM, subjects.DIRECTIVE_CONSUMER)
        return ci.num_pending == 0 and ci.num_ack_pending == 0

    await wait_for(drained, 10)
    history = await client.get_history("timed-stale")
    assert "wait.timed_out" not in kinds(history)
    assert [name for _, name in step_kinds(history)] == ["start", "start", "go", "go", "linger", "linger"]
    assert kinds(history)[-1] == "run.completed"


# --- terminate ---------------------------------------------------------------------------------------


async def test_terminate_stops_a_long_step_on_the_worker_within_a_second(model: Model) -> None:
    client = model.client
    handle = await client.start_workflow("Long", "long-1")
    await wait_history(client, "long-1", "step.started", step="long_step")
    asked = time.time()
    await handle.terminate(reason="enough")
    with pytest.raises(WorkflowTerminatedError):
        await handle.result(timeout=5)
    assert await model.stopped_at("long-1") - asked < 1.0
    history = await client.get_history("long-1")
    assert step_kinds(history) == [("step.started", "start"), ("step.completed", "start"),
                                   ("step.started", "long_step")]
    terminated = next(e for e in history if str(e.kind) == "run.terminated")
    assert terminated.msg.reason == "enough"


# --- children -----------------------------------------------------------------------------------------


async def child_outcome(model: Model, mode: str, act: Any = None) -> dict[str, Any]:
    """Start a Guardian whose Ward runs in ``mode``, let ``act(child_id)`` act on the child, and return
    what the Guardian's callback step received."""
    wf_id = f"guardian-{mode}"
    handle = await model.client.start_workflow("Guardian", wf_id, {"mode": mode})
    if act is not None:
        await act(f"{wf_id}-child")
    return await handle.result(timeout=15)


async def test_a_child_that_ends_in_any_way_reports_to_the_parent_callback(model: Model) -> None:
    client = model.client

    async def terminate(child_id: str) -> None:
        await wait_history(client, child_id, "step.started", step="start")
        await (await model.handle(child_id)).terminate(reason="stop the child")

    async def cancel_waiting(child_id: str) -> None:
        await wait_history(client, child_id, "wait.started")
        await (await model.handle(child_id)).cancel(reason="not needed")

    async def cancel_during_step(child_id: str) -> None:
        await wait_history(client, child_id, "step.started", step="start")
        await (await model.handle(child_id)).cancel(reason="later")
        await wait_history(client, child_id, "run.cancel_received")
        model.release(child_id)

    outcomes = await asyncio.gather(
        child_outcome(model, "ok"), child_outcome(model, "fail"), child_outcome(model, "long", terminate),
        child_outcome(model, "wait", cancel_waiting), child_outcome(model, "hold", cancel_during_step))
    assert outcomes == [
        {"status": "completed", "result": "child-result", "type": None, "message": None},
        {"status": "failed", "result": None, "type": "RuntimeError", "message": "child boom"},
        {"status": "terminated", "result": None, "type": "Terminated", "message": "stop the child"},
        {"status": "cancelled", "result": None, "type": "Cancelled", "message": "not needed"},
        {"status": "cancelled", "result": None, "type": "Cancelled", "message": "later"},
    ]
    await model.stopped_at("guardian-long-child")  # the terminated child's step was stopped
    received = [e for e in await client.get_history("guardian-long") if str(e.kind) == "event.received"]
    assert [e.msg.event_name for e in received] == ["on_child"]
    assert received[0].msg.payload["status"] == "terminated"
