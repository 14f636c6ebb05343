"""A NATS server restart in the middle of a step: the engine and worker processes reconnect, the step
in flight completes, nothing runs twice, and the client still learns the result."""

from __future__ import annotations

import asyncio
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


async def test_step_in_flight_survives_a_nats_restart(
        nats_server: NatsServerProcess, engine_process: subprocess.Popen[bytes],
        subprocess_env: dict[str, str], tmp_path: Path) -> None:
    env = worker_env(subprocess_env, ENGINE_NATS_WORKER_ACK_WAIT=2, GRCTL_TEST_DIR=tmp_path)
    worker = await WorkerProcess("support.wf_outage", env).start().ready()
    conn = await Connection.connect([nats_server.url])
    try:
        client = Client(conn)
        wf_id = f"outage-{ULID()}"
        handle = await client.start_workflow("Outage", wf_id)
        async def started() -> bool:
            return (tmp_path / f"{wf_id}.started").exists()

        await wait_for(started, timeout=20)

        nats_server.kill()  # a crash: same port and store when it comes back
        await asyncio.sleep(1.0)
        nats_server.start()
        (tmp_path / f"{wf_id}.go").touch()

        assert await handle.result(timeout=60) == "ba"  # the client re-watches after reconnecting
        assert (tmp_path / "before.count").read_text().split() == [wf_id]
        assert (tmp_path / "after.count").read_text().split() == [wf_id]
        assert str((await client.describe(wf_id)).status) == "completed"
        kinds = [str(e.kind) for e in await client.get_history(wf_id)]
        assert kinds.count("run.completed") == 1 and kinds.count("step.completed") == 2
    finally:
        await conn.close()
        worker.stop()
