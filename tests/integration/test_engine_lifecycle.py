"""The engine driven over real NATS by a fake worker: a run's whole history (C1 of
docs/protocol.md#conformance-scenarios)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.fake_worker import FakeWorker

from grctl.engine import Engine
from grctl.models import HistoryKind, RunStatus
from grctl.nats.connection import Connection


@pytest.fixture
async def worker(connection: Connection, engine: Engine) -> AsyncIterator[FakeWorker]:
    yield FakeWorker(connection)


async def test_c1_start_to_complete_history(worker: FakeWorker) -> None:
    assert (await worker.register("Order")).success
    resp, info = await worker.start("Order", "wf-c1", input={"value": "ok"})
    assert resp.success and resp.error is None
    task = await worker.next_task("Order")
    assert task.kind == "start" and task.id and task.run_info.id == info.id
    assert task.run_info.status == RunStatus.running and task.run_info.history_seq_id == 1
    assert task.msg.input == {"value": "ok"} and task.msg.timeout_ms == 300000
    await worker.picked_up(task, "start")
    await worker.result(task, "complete", {"result": "ok"})
    events = await worker.wait_history("wf-c1", info.id, HistoryKind.run_completed)
    assert [e.kind for e in events] == [HistoryKind.run_started, HistoryKind.step_started,
                                        HistoryKind.step_completed, HistoryKind.run_completed]
    assert events[1].msg.step_name == "start" and events[2].msg.step_name == "start"
    assert events[3].msg.result == "ok"
    assert all(e.operation_id == "" for e in events)
    assert (await worker.run_info("wf-c1")).status == RunStatus.completed
