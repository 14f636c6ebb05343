"""Overload and idempotence with real processes: many runs in flight from several clients complete
without errors, waiting for outcomes costs no JetStream consumer per run (so more runs than the stream's
consumer limit can be awaited at once), and a start retried after its reply was lost makes no second
run. tests/bench/bench_overload.py measures the same at larger sizes."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from support.processes import WorkerProcess
from ulid import ULID

from grctl.client.client import Client
from grctl.models import CommandKind, RunInfo, StartCmd, encode_command, utcnow
from grctl.models.command import Command
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.history import read_history
from grctl.workflow.handle import start_run

pytestmark = pytest.mark.timeout(240)

CONSUMER_LIMIT = 1000  # nats-server's default limit of consumers per stream


@pytest.fixture
async def bulk_worker(engine_process: subprocess.Popen[bytes],
                      subprocess_env: dict[str, str]) -> WorkerProcess:
    worker = await WorkerProcess("support.wf_bulk", subprocess_env, "--max-concurrent", "200").start().ready()
    try:
        yield worker
    finally:
        worker.stop()


async def test_more_runs_than_the_consumer_limit_in_flight_from_two_clients(
        nats_url: str, bulk_worker: WorkerProcess) -> None:
    runs, in_flight = 2000, 1000
    connections = [await Connection.connect([nats_url], name=f"grctl-load-{i}") for i in range(2)]
    consumers_seen: list[int] = []
    done = asyncio.Event()

    async def count_consumers() -> None:
        while not done.is_set():
            consumers_seen.append((await connections[0].js.stream_info(subjects.STREAM)).state.consumer_count)
            await asyncio.sleep(0.2)

    async def load(client: Client, prefix: str, n: int) -> list[int]:
        gate = asyncio.Semaphore(in_flight // 2)

        async def one(i: int) -> int:
            async with gate:
                return await client.run_workflow("Bulk", f"{prefix}-{i}", {"n": i}, timeout=180)

        return await asyncio.gather(*(one(i) for i in range(n)))

    counter = asyncio.create_task(count_consumers())
    try:
        prefix = f"load-{ULID()}".lower()
        results = await asyncio.gather(*(load(Client(c), f"{prefix}-{k}", runs // 2)
                                         for k, c in enumerate(connections)))
    finally:
        done.set()
        await counter
        for c in connections:
            await c.close()
    assert [sorted(r) for r in results] == [list(range(runs // 2))] * 2
    # No consumer per awaited run: the engine's three and the worker's one, whatever the load.
    assert consumers_seen and max(consumers_seen) <= 5, consumers_seen[-10:]
    assert in_flight >= CONSUMER_LIMIT


async def test_a_start_whose_reply_was_lost_is_retried_into_the_same_run(
        nats_url: str, bulk_worker: WorkerProcess) -> None:
    conn = await Connection.connect([nats_url])
    try:
        wf_id = f"lost-reply-{ULID()}".lower()
        run = RunInfo(id=str(ULID()), wf_id=wf_id, wf_type="Bulk", created_at=utcnow())
        cmd = Command(id=str(ULID()), kind=CommandKind.run_start, timestamp=utcnow(), sender_id="c:test",
                      msg=StartCmd(run_info=run, input={"n": 7}))
        # The first attempt: the engine starts the run, but nobody hears its reply.
        nobody = conn.nc.new_inbox()
        await conn.nc.publish(subjects.api_workflow(run.wf_id), encode_command(cmd), reply=nobody)
        await conn.nc.flush()
        # The caller, having seen no reply, starts again with the same run id: the engine says yes.
        handle = await start_run(conn, run, {"n": 7}, "c:test")
        assert await handle.result(timeout=30) == 7
        client = Client(conn)
        assert (await client.describe(run.wf_id)).id == run.id
        kinds = [str(e.kind) for e in await read_history(conn.nc, run.wf_id, run.id)]
        assert kinds.count("run.started") == 1 and kinds.count("run.completed") == 1, kinds
        # The id's run has ended: a start with a new run id makes a new run, as before.
        again = await client.run_workflow("Bulk", run.wf_id, {"n": 8}, timeout=30)
        assert again == 8 and (await client.describe(run.wf_id)).id != run.id
    finally:
        await conn.close()
