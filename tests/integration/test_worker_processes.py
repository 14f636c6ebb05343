"""Worker processes sharing work, and graceful shutdown by signal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from support.processes import WorkerProcess, worker_env
from support.sdk import wait_for
from ulid import ULID

from grctl.client.client import Client
from grctl.models.history import HistoryKind
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(120)


def matching(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


def executed_runs(directory: Path) -> list[str]:
    return sorted(line for f in matching(directory, "executed.*") for line in f.read_text().splitlines())


async def test_two_worker_processes_share_200_workflows(
        engine: Any, connection: Connection, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    env = worker_env(subprocess_env, GRCTL_TEST_DIR=tmp_path)
    first = WorkerProcess("support.wf_simple", env, "--max-concurrent", "8").start()
    second = WorkerProcess("support.wf_simple", env, "--max-concurrent", "8").start()
    try:
        await first.ready()
        await second.ready()
        client = Client(connection)
        gate = asyncio.Semaphore(50)

        async def run(n: int) -> tuple[str, dict[str, Any]]:
            async with gate:
                wf_id = f"share-{n}-{ULID()}"
                return wf_id, await client.run_workflow("OneStep", wf_id, {"n": n}, timeout=30)

        results = await asyncio.gather(*(run(n) for n in range(200)))
        assert sorted(r["n"] for _, r in results) == list(range(200))
        pids = {r["pid"] for _, r in results}
        assert pids == {first.pid, second.pid}  # both did work
        assert executed_runs(tmp_path) == sorted(wf_id for wf_id, _ in results)  # every body ran exactly once
        for wf_id, _ in results[:20]:
            history = await client.get_history(wf_id)
            assert [e.kind for e in history].count(HistoryKind.run_completed) == 1
            assert [e.kind for e in history].count(HistoryKind.step_completed) == 1
    finally:
        first.stop()
        second.stop()


async def test_sigterm_drains_in_flight_step_then_exits(
        engine: Any, connection: Connection, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    env = worker_env(subprocess_env, GRCTL_TEST_DIR=tmp_path)
    worker = WorkerProcess("support.wf_simple", env, "--shutdown-timeout", "10").start()
    try:
        await worker.ready()
        client = Client(connection)
        handle = await client.start_workflow("SlowStep", f"drain-{ULID()}", {"seconds": 1.5})

        async def started() -> bool:
            return bool(matching(tmp_path, f"{handle.wf_id}.started.*"))

        await wait_for(started, timeout=10)
        worker.signal(signal.SIGTERM)
        assert await handle.result(timeout=10) == {"slept": 1.5, "pid": worker.pid}
        assert await asyncio.to_thread(worker.wait, 10) == 0
        assert "stopped" in worker.output
    finally:
        worker.stop()
