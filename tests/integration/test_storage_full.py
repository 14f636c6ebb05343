"""The stream's storage runs out under load, then room returns, with real processes: nats-server on a
small filesystem (a 32 MB tmpfs; JetStream limits itself to 75 % of it), an engine process with its
HTTP listener, a worker process. The store is filled while runs are in flight, and stays full for
longer than their steps' timeout.

What a user must see: a start refused at once with a clear "storage full" error (not a timeout), the
condition on ``/readyz`` and as a metric, no accepted run failed or left pending, and everything moving
again when room returns, without a restart.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import ChildProcess, WorkerProcess
from support.scrape import aget, value, wait_status
from support.storage_full import AT_ONCE, CHUNK, fill, make_room, small_disk

from grctl.client.client import Client
from grctl.models.errors import StorageFullError
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess, free_port

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
DISK_MB = 32
PAYLOAD = "p" * 50_000
IN_FLIGHT = 20
FULL_FOR = 6.0  # seconds: longer than the steps' timeout (3 s)


@pytest.fixture(name="small_disk")
def small_disk_fixture(tmp_path: Path) -> Iterator[Path]:
    """A 32 MB tmpfs for the store, unmounted afterwards (mounting needs root: the test command runs
    as root in CI)."""
    with small_disk(tmp_path / "disk", DISK_MB) as disk:
        yield disk


async def test_full_store_refuses_starts_at_once_and_recovers_without_restart(small_disk: Path,
                                                                              tmp_path: Path) -> None:
    nats = NatsServerProcess(store_dir=small_disk / "nats", log_file=tmp_path / "nats.log").start()
    env = dict(os.environ, GRCTL_NATS_SERVERS=nats.url, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    listen = f"127.0.0.1:{free_port()}"
    ops = f"http://{listen}"
    engine = ChildProcess([sys.executable, "-m", "grctl", "engine", "--http", listen], env, cwd=ROOT,
                          log_path=tmp_path / "engine.log").start()
    worker = WorkerProcess("support.wf_storage", env)
    worker.log_path = tmp_path / "worker.log"
    conn: Connection | None = None
    try:
        await wait_status(f"{ops}/readyz", 200)
        await worker.start().ready(60)
        conn = await Connection.connect([nats.url], name="storage-test")
        client = Client(conn)
        handles = [await client.start_workflow("Payload", f"accepted-{i}", PAYLOAD) for i in range(IN_FLIGHT)]
        arrived: list[float] = []

        async def result(h: object) -> object:
            outcome = await h.result(timeout=120)  # type: ignore[attr-defined]
            arrived.append(time.monotonic())
            return outcome

        results = [asyncio.ensure_future(result(h)) for h in handles]

        assert await fill(conn, limit=200) > 5 * len(CHUNK)
        began = time.monotonic()
        with pytest.raises(StorageFullError, match=r"(?i)storage full"):
            await client.start_workflow("Payload", "refused", PAYLOAD)
        refused_after = time.monotonic() - began
        assert refused_after < AT_ONCE, f"the refusal took {refused_after:.1f}s: a timeout, not an answer"
        body = await wait_status(f"{ops}/readyz", 503, timeout=10)
        assert "storage is full" in body
        _, metrics = await aget(f"{ops}/metrics")
        assert value(metrics, "grctl_engine_storage_full") == 1
        assert value(metrics, "grctl_engine_storage_refusals_total") >= 1

        await asyncio.sleep(FULL_FOR)  # longer than a step may take: the steps in flight cannot report
        assert not any(r.done() for r in results), "a run in flight ended while the store was full"
        await make_room(conn)  # nothing is restarted
        room = time.monotonic()

        assert await asyncio.gather(*results) == [len(PAYLOAD)] * IN_FLIGHT, "an accepted run was failed"
        assert min(arrived) > room, "the full store held up every run in flight"
        after = await client.start_workflow("Payload", "after", PAYLOAD)
        assert await after.result(timeout=60) == len(PAYLOAD)
        await wait_status(f"{ops}/readyz", 200, timeout=30)
        for h in handles:
            assert str((await client.describe(h.wf_id)).status) == "completed"
        assert engine.proc is not None and engine.proc.poll() is None, "the engine was not restarted"
    finally:
        if conn is not None:
            await conn.close()
        worker.stop()
        engine.stop()
        nats.stop()
