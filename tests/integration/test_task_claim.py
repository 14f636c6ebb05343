"""A task body never runs again once its completion is recorded, even when a nats-server crash hands
the step to a second live worker (docs/protocol.md#claims-one-execution-writes-a-step): the second
worker's execution finds the first one's claim, reads the history and replays the recorded outcome; and
when it takes over a task the first has not finished, the first may no longer record anything."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import WorkerProcess, worker_env
from support.sdk import wait_for
from ulid import ULID

from grctl.client.client import Client
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.direct import read_subject
from grctl.nats.server import NatsServerProcess
from grctl.workflow.handle import WorkflowHandle

pytestmark = pytest.mark.timeout(120)


@dataclass
class TwoHolders:
    """One step held by two worker processes: ``holder`` entered it first, was frozen while nats-server
    was SIGKILLed and restarted, and is running again; ``other`` got the step delivered meanwhile."""

    wf_id: str
    handle: WorkflowHandle
    client: Client
    holder: WorkerProcess
    other: WorkerProcess
    tmp: Path

    def go(self, worker: WorkerProcess) -> None:
        (self.tmp / f"{self.wf_id}.go.{worker.pid}").touch()

    def ran(self) -> list[str]:
        return (self.tmp / f"{self.wf_id}.ran").read_text().split()

    async def completions(self) -> int:
        kinds = [str(e.kind) for e in await self.client.get_history(self.wf_id)]
        assert kinds.count("run.completed") == 1
        return kinds.count("task.completed")


Holders = Callable[[str], AbstractAsyncContextManager[TwoHolders]]


@pytest.fixture
def two_holders(nats_server: NatsServerProcess, engine_process: subprocess.Popen[bytes],
                subprocess_env: dict[str, str], tmp_path: Path) -> Holders:
    @contextlib.asynccontextmanager
    async def make(wf_type: str) -> AsyncIterator[TwoHolders]:
        env = worker_env(subprocess_env, ENGINE_NATS_WORKER_ACK_WAIT=2, GRCTL_TEST_DIR=tmp_path)
        first = await WorkerProcess("support.wf_claim", env).start().ready()
        second = await WorkerProcess("support.wf_claim", env).start().ready()
        conn = await Connection.connect([nats_server.url])
        try:
            client = Client(conn)
            wf_id = f"claim-{ULID()}"
            handle = await client.start_workflow(wf_type, wf_id)

            def entered(worker: WorkerProcess) -> bool:
                return (tmp_path / f"{wf_id}.entered.{worker.pid}").exists()

            async def someone_entered() -> bool:
                return entered(first) or entered(second)

            await wait_for(someone_entered, timeout=20)
            holder, other = (first, second) if entered(first) else (second, first)
            holder.signal(signal.SIGSTOP)  # frozen mid-step: its in-progress acks stop
            try:
                nats_server.kill()
                await asyncio.sleep(1.0)
                nats_server.start()

                async def other_entered() -> bool:
                    return entered(other)

                await wait_for(other_entered, timeout=30)  # the step was delivered to the second worker
            finally:
                holder.signal(signal.SIGCONT)
            yield TwoHolders(wf_id, handle, client, holder, other, tmp_path)
        finally:
            await conn.close()
            first.stop()
            second.stop()

    return make


async def test_a_task_recorded_by_one_worker_does_not_run_again_on_another(two_holders: Holders) -> None:
    async with two_holders("Claimed") as run:
        run.go(run.holder)  # the first execution claims the step, runs the task and completes the run
        assert await run.handle.result(timeout=60) == f"charged by {run.holder.pid}"

        # The second goes on past its gate: it finds the claim, reads the history, and since the run has
        # moved past this dispatch it stops there, running nothing.
        run.go(run.other)
        await asyncio.to_thread(run.other.wait_for_line, "moved past this dispatch", 30, True)
        assert not (run.tmp / f"{run.wf_id}.done.{run.other.pid}").exists()
        assert run.ran() == [str(run.holder.pid)]
        assert await run.completions() == 1


async def test_a_taken_over_execution_records_nothing(two_holders: Holders) -> None:
    async with two_holders("ClaimedInTask") as run:
        # The second execution found the first's claim and no outcome: it took the step over and runs
        # the task body too (it had not completed), then completes the run.
        assert run.ran() == [str(run.holder.pid), str(run.other.pid)]
        run.go(run.other)
        assert await run.handle.result(timeout=60) == f"charged by {run.other.pid}"

        run.go(run.holder)  # the first finishes its body: its completion is refused, it stops
        await asyncio.to_thread(run.holder.wait_for_line, "another execution claimed step start", 30, True)
        assert await run.completions() == 1


async def test_a_task_delivered_again_after_its_step_ended_runs_nothing(
        nats_server: NatsServerProcess, engine_process: subprocess.Popen[bytes], connection: Connection,
        subprocess_env: dict[str, str], tmp_path: Path) -> None:
    """A nats-server that crashes before storing a worker's ack delivers the task again after the run
    moved on. Here each task of a finished run is published again, as such a delivery looks to the
    worker (a first delivery, since the crash also lost the count). The second and third steps read the
    store, which now holds the run's final value: run again, they would compute other task arguments,
    find no recorded outcome for them and run the task bodies a second time."""
    worker = WorkerProcess("support.wf_cluster", worker_env(subprocess_env, GRCTL_TEST_DIR=tmp_path)).start()
    try:
        await worker.ready(timeout=30)
        client = Client(connection)
        wf_id = f"again-{ULID()}"
        handle = await client.start_workflow("Triple", wf_id, {"n": 1})
        assert await handle.result(timeout=60) == 112
        info = await client.describe(wf_id)
        kinds_before = [str(e.kind) for e in await client.get_history(wf_id)]
        tasks = await read_subject(connection.nc, subjects.worker_task("Triple", wf_id, info.id))
        assert len(tasks) == 3
        for stored in tasks:
            await connection.js.publish(stored.subject, stored.data)

        async def all_settled() -> bool:
            return worker.output.count("moved past this dispatch") == 3

        await wait_for(all_settled, timeout=30)
        ran = [line.split()[1] for p in sorted(tmp_path.glob("tasks.*"))  # noqa: ASYNC240
               for line in p.read_text().splitlines()]
        assert sorted(ran) == ["add_hundred", "add_one", "add_ten"]  # each body once
        assert [str(e.kind) for e in await client.get_history(wf_id)] == kinds_before
        assert "NonDeterminismError" not in worker.output
    finally:
        worker.stop()
