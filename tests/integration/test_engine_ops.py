"""Engine operations: residue purge (C41), the engine as a process (``python -m grctl engine``),
start/stop, several concurrent runs through the group committer."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

from support.fake_worker import FakeWorker, eventually

from grctl.engine import Engine
from grctl.models import (
    Directive,
    DirectiveKind,
    ErrorDetails,
    Fail,
    HistoryKind,
    RunStatus,
    StepTimeoutFired,
    utcnow,
)
from grctl.nats import subjects
from grctl.nats.connection import Connection


async def residue(worker: FakeWorker, wf_id: str) -> dict[str, int]:
    return {
        "directives": await worker.count(f"grctl_directive.*.{wf_id}.>"),
        "tasks": await worker.count(f"grctl_worker_task.*.{wf_id}.>"),
        "timers": await worker.count(f"grctl_timers.{wf_id}.*.*.>"),  # not the retention schedule
        "inbox": await worker.count(subjects.inbox(wf_id)),
    }


async def test_c41_residue_is_purged_after_a_forced_failure_and_a_timeout(connection: Connection,
                                                                          engine: Engine) -> None:
    worker = FakeWorker(connection)
    await worker.register("Res")
    _, bystander = await worker.start("Res", "wf-keep")
    _, failing = await worker.start("Res", "wf-fail")
    _, timing_out = await worker.start("Res", "wf-to")
    tasks = {}
    for _ in range(3):
        t = await worker.next_task("Res")
        tasks[t.run_info.wf_id] = t
    fail = Directive(id="force-fail", timestamp=utcnow(), kind=DirectiveKind.fail,
                     run_info=tasks["wf-fail"].run_info,
                     msg=Fail(error=ErrorDetails(type="Forced", message="x")))
    await worker.publish_directive(fail)
    to = tasks["wf-to"]
    timeout = Directive(id="force-timeout", timestamp=utcnow(), kind=DirectiveKind.step_timeout,
                        run_info=to.run_info,
                        msg=StepTimeoutFired(step_name="start", original_directive_id=to.id))
    await worker.publish_directive(timeout)
    events = await worker.wait_history("wf-fail", failing.id, HistoryKind.run_failed)
    assert [e.kind for e in events] == [HistoryKind.run_started, HistoryKind.run_failed]
    events = await worker.wait_history("wf-to", timing_out.id, HistoryKind.run_failed)
    assert [e.kind for e in events] == [HistoryKind.run_started, HistoryKind.step_timeout,
                                        HistoryKind.run_failed]
    for wf_id in ("wf-fail", "wf-to"):
        async def purged(wf_id: str = wf_id) -> bool:
            await engine.sweeper.sweep()  # what every consumer acknowledged goes
            return await residue(worker, wf_id) == {"directives": 0, "tasks": 0, "timers": 0, "inbox": 0}

        await eventually(purged)
        assert await worker.count(f"grctl_timers.{wf_id}.retention.*") == 1, "its removal is scheduled"
    # The running run keeps its step timer; its start directive and its task, both acknowledged (the fake
    # worker acks at once), went with the sweep like everything acknowledged.
    assert await residue(worker, "wf-keep") == {"directives": 0, "tasks": 0, "timers": 1, "inbox": 0}
    assert (await worker.kinds("wf-keep", bystander.id)) == [HistoryKind.run_started]
    assert (await worker.run_info("wf-fail")).status == RunStatus.failed


async def test_many_runs_complete_through_group_commit(connection: Connection, engine: Engine) -> None:
    worker = FakeWorker(connection)
    await worker.register("Bulk")
    n = 40
    starts = await asyncio.gather(*(worker.start("Bulk", f"bulk-{i}") for i in range(n)))
    assert all(resp.success for resp, _ in starts)
    tasks = [await worker.next_task("Bulk") for _ in range(n)]
    await asyncio.gather(*(worker.result(t, "complete", {"result": t.run_info.wf_id}) for t in tasks))
    for _, info in starts:
        events = await worker.wait_history(info.wf_id, info.id, HistoryKind.run_completed)
        assert events[-1].msg.result == info.wf_id
    assert engine.committer.transitions >= 3 * n


async def test_engine_stop_is_idempotent_and_works_before_start(connection: Connection) -> None:
    fresh = Engine(connection)
    await fresh.stop()
    await fresh.stop()


async def test_engine_as_a_process_serves_and_stops_on_sigterm(connection: Connection,
                                                              engine_process: subprocess.Popen) -> None:
    worker = FakeWorker(connection)
    assert (await worker.register("Proc")).success
    _, info = await worker.start("Proc", "wf-proc")
    task = await worker.next_task("Proc")
    await worker.result(task, "complete", {"result": "ok"})
    await worker.wait_history("wf-proc", info.id, HistoryKind.run_completed)
    engine_process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(engine_process.wait, 15) == 0


async def test_engine_command_memory_flag_creates_a_memory_stream(connection: Connection, nats_url: str,
                                                                  subprocess_env: dict[str, str]) -> None:
    from conftest import wait_engine_ready
    from nats.js.api import StorageType

    proc = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", nats_url, "--memory",
                             "--log-level", "warning"], env=subprocess_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        await wait_engine_ready(nats_url)
        info = await connection.js.stream_info(subjects.STREAM)
        assert info.config.storage == StorageType.MEMORY
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0
