"""A task body never runs again once its completion is recorded, even when a nats-server crash hands
the step to a second live worker (docs/protocol.md#claims): the second worker's execution of the step
finds the first one's claim, reads the history and replays the recorded outcome."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
from support.processes import WorkerProcess, worker_env
from support.sdk import wait_for
from ulid import ULID

from grctl.client.client import Client
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess

pytestmark = pytest.mark.timeout(120)


async def test_a_task_recorded_by_one_worker_does_not_run_again_on_another(
        nats_server: NatsServerProcess, engine_process: subprocess.Popen[bytes],
        subprocess_env: dict[str, str], tmp_path: Path) -> None:
    env = worker_env(subprocess_env, ENGINE_NATS_WORKER_ACK_WAIT=2, GRCTL_TEST_DIR=tmp_path)
    first = await WorkerProcess("support.wf_claim", env).start().ready()
    second = await WorkerProcess("support.wf_claim", env).start().ready()
    conn = await Connection.connect([nats_server.url])
    try:
        client = Client(conn)
        wf_id = f"claim-{ULID()}"
        handle = await client.start_workflow("Claimed", wf_id)

        def entered(worker: WorkerProcess) -> Path:
            return tmp_path / f"{wf_id}.entered.{worker.pid}"

        async def someone_entered() -> bool:
            return entered(first).exists() or entered(second).exists()

        await wait_for(someone_entered, timeout=20)
        holder, other = (first, second) if entered(first).exists() else (second, first)
        holder.signal(signal.SIGSTOP)  # frozen mid-step: its in-progress acks stop
        try:
            nats_server.kill()
            await asyncio.sleep(1.0)
            nats_server.start()

            async def other_entered() -> bool:
                return entered(other).exists()

            await wait_for(other_entered, timeout=30)  # the step was delivered to the second worker
        finally:
            holder.signal(signal.SIGCONT)
        (tmp_path / f"{wf_id}.go.{holder.pid}").touch()
        assert await handle.result(timeout=60) == f"charged by {holder.pid}"

        (tmp_path / f"{wf_id}.go.{other.pid}").touch()  # the second execution goes on past the gate

        async def other_done() -> bool:
            return (tmp_path / f"{wf_id}.done.{other.pid}").exists()

        await wait_for(other_done, timeout=30)
        assert (tmp_path / f"{wf_id}.ran").read_text().split() == [str(holder.pid)]
        kinds = [str(e.kind) for e in await client.get_history(wf_id)]
        assert kinds.count("task.completed") == 1 and kinds.count("run.completed") == 1
    finally:
        await conn.close()
        first.stop()
        second.stop()
