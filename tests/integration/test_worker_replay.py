"""Crash and replay with real worker processes (C29–C32, C37 of docs/protocol.md#conformance-scenarios).

Worker A executes part of ``work_step``, pauses and is killed with SIGKILL; worker B receives the
redelivered task (ack wait 0.5 s) and replays A's recorded operations.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.processes import WorkerProcess, worker_env
from support.sdk import kinds, wait_for
from ulid import ULID

from grctl.client.client import Client
from grctl.models.errors import WorkflowError
from grctl.models.history import HistoryEvent, HistoryKind
from grctl.nats.connection import Connection
from grctl.workflow.handle import WorkflowHandle

pytestmark = pytest.mark.timeout(120)


async def crash_and_replay(client: Client, subprocess_env: dict[str, str], tmp_path: Path,
                           scenarios: list[str], extra_paused: tuple[str, ...] = ()
                           ) -> tuple[dict[str, WorkflowHandle], dict[str, Any]]:
    """Start one run per scenario on worker A, kill A once all paused, finish them on worker B."""
    base = worker_env(subprocess_env, ENGINE_NATS_WORKER_ACK_WAIT=0.5, GRCTL_TEST_DIR=tmp_path)
    a = await WorkerProcess("support.wf_replay", worker_env(base, PAUSE=1)).start().ready()
    b = None
    try:
        handles = {s: await client.start_workflow("Replay", f"{s}-{ULID()}", {"scenario": s})
                   for s in scenarios}

        async def all_paused() -> bool:
            names = [h.wf_id for h in handles.values()]
            names += [f"{handles[s].wf_id}{suffix}" for s in extra_paused for suffix in ("-child",)]
            return all((tmp_path / f"{name}.paused").exists() for name in names)

        await wait_for(all_paused, timeout=20)
        a.kill()
        b = WorkerProcess("support.wf_replay", worker_env(base, GREET="world", ORDER="ba")).start()
        await b.ready()
        results: dict[str, Any] = {}
        for scenario, handle in handles.items():
            try:
                results[scenario] = await handle.result(timeout=20)
            except (WorkflowError, asyncio.CancelledError) as exc:
                results[scenario] = exc
        return handles, results
    finally:
        a.kill()
        if b is not None:
            b.stop()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def of_kind(history: list[HistoryEvent], kind: HistoryKind) -> list[HistoryEvent]:
    return [e for e in history if e.kind == kind]


async def test_crash_mid_step_completed_task_runs_once(
        engine: Any, connection: Connection, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    client = Client(connection)
    handles, results = await crash_and_replay(client, subprocess_env, tmp_path, ["completed"])
    wf_id = handles["completed"].wf_id
    assert results["completed"] == "done-after"
    assert lines(tmp_path / "simple_task.count") == [wf_id]  # the completed task ran exactly once
    assert lines(tmp_path / "after_task.count") == [wf_id]
    history = await client.get_history(wf_id)
    started = of_kind(history, HistoryKind.task_started)
    assert [e.msg.task_name for e in started] == ["simple_task", "after_task"]
    assert [e.msg.task_name for e in of_kind(history, HistoryKind.task_completed)] == \
        ["simple_task", "after_task"]
    work_started = [e for e in of_kind(history, HistoryKind.step_started) if e.msg.step_name == "work_step"]
    assert len(work_started) == 1  # B sent no second step_picked_up
    completed = [e for e in of_kind(history, HistoryKind.step_completed) if e.msg.step_name == "work_step"]
    assert len(completed) == 1 and completed[0].worker_id != work_started[0].worker_id


async def test_replay_outcomes_and_nondeterminism(
        engine: Any, connection: Connection, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    client = Client(connection)
    scenarios = ["failed", "cancelled", "nondet_arg", "nondet_order", "values", "sleep"]
    handles, results = await crash_and_replay(client, subprocess_env, tmp_path, scenarios)

    # C30: a failed task replays as its exception, without running again
    assert isinstance(results["failed"], WorkflowError)
    assert "ValueError: original error" in str(results["failed"])
    assert len(lines(tmp_path / "fail_task.count")) == 2  # both attempts on A, none on B
    history = await client.get_history(handles["failed"].wf_id)
    assert kinds(history, "task.") == ["task.started", "task.attempt_failed", "task.failed"]

    # C30: a cancelled task replays as a cancellation the handler catches
    assert results["cancelled"] == "cancelled"
    assert len(lines(tmp_path / "cancel_task.count")) == 1
    history = await client.get_history(handles["cancelled"].wf_id)
    assert kinds(history, "task.") == ["task.started", "task.cancelled"]

    # C31: different argument, different order
    for scenario in ("nondet_arg", "nondet_order"):
        assert isinstance(results[scenario], WorkflowError), scenario
        assert "NonDeterminism" in str(results[scenario])

    # C32: recorded values come back identical; a live sleep records its duration
    history = await client.get_history(handles["values"].wf_id)
    recorded_now = of_kind(history, HistoryKind.timestamp_recorded)[0].msg.value
    recorded_random = of_kind(history, HistoryKind.random_recorded)[0].msg.value
    recorded_uuid = of_kind(history, HistoryKind.uuid_recorded)[0].msg.value
    assert results["values"] == {"now": recorded_now, "random": recorded_random, "uuid": recorded_uuid}
    assert [e.msg.duration_ms for e in of_kind(history, HistoryKind.sleep_recorded)] == [100]
    assert len(of_kind(history, HistoryKind.timestamp_recorded)) == 1  # nothing recorded twice

    # C32: a completed sleep is skipped on replay
    assert results["sleep"] == "slept"
    history = await client.get_history(handles["sleep"].wf_id)
    completed = [e for e in of_kind(history, HistoryKind.step_completed) if e.msg.step_name == "work_step"]
    assert completed[0].msg.duration_ms < 1500
    assert len(of_kind(history, HistoryKind.sleep_recorded)) == 1


async def test_c37_child_start_and_send_to_parent_are_not_repeated(
        engine: Any, connection: Connection, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    client = Client(connection)
    handles, results = await crash_and_replay(client, subprocess_env, tmp_path, ["child", "sender"],
                                              extra_paused=("sender",))
    assert results["child"] == "child-done"
    assert results["sender"] == "sent-once"
    for scenario in ("child", "sender"):
        wf_id = handles[scenario].wf_id
        history = await client.get_history(wf_id)
        started = of_kind(history, HistoryKind.child_started)
        assert len(started) == 1
        child_history = await client.get_history(f"{wf_id}-child")
        assert len(of_kind(child_history, HistoryKind.run_started)) == 1  # started once, same run
        assert (await client.describe(f"{wf_id}-child")).id == started[0].msg.run_id
    assert lines(tmp_path / "child_start.count").count(f"{handles['child'].wf_id}-child") == 1
    sender = handles["sender"].wf_id
    assert len(of_kind(await client.get_history(f"{sender}-child"), HistoryKind.parent_event_sent)) == 1
    assert len(of_kind(await client.get_history(sender), HistoryKind.event_received)) == 1
