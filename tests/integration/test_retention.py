"""Finished runs are removed by the engine once its retention has passed, with all their records; active
runs, and a newer run of the same workflow id, are left whole. Lookups stay exact-subject reads, and an
existing stream without the latest-run pointers gets them when the engine starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest
from support.sdk import wait_for, workers

from grctl.client.client import Client
from grctl.engine import Engine
from grctl.engine.migrate import LAYOUT, ensure_latest_pointers
from grctl.models import Directive, RunInfo
from grctl.models.errors import WorkflowNotFoundError
from grctl.models.records import LatestRun
from grctl.nats import direct, jetstream, subjects
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)

kept = Workflow("Kept")


@kept.start()
async def kept_start(ctx: Context, wait: bool = False) -> Directive:
    ctx.store.put("k", 1)
    return ctx.next.wait() if wait else ctx.next.complete("done")


@kept.event()
async def finish(ctx: Context) -> Directive:
    return ctx.next.complete("finished")


@pytest.fixture
async def short_retention(nats_url: str) -> AsyncIterator[Engine]:
    conn = await Connection.connect([nats_url], name="grctl-engine-retention")
    engine = Engine(conn, retention=timedelta(seconds=1), worker_cmd_timeout=2.0)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop(timeout=10)
        await conn.close()


async def records(nc: object, run: RunInfo) -> dict[str, int]:
    found = {}
    for subject in subjects.run_records(run.wf_type, run.wf_id, run.id):
        found[subject] = len(await direct.read_subject(nc, subject))  # type: ignore[arg-type]
    return found


async def test_finished_runs_are_removed_after_the_retention(short_retention: Engine, connection: Connection,
                                                             nats_url: str) -> None:
    client = Client(connection)
    async with workers(nats_url) as start_worker:
        await start_worker(kept)
        assert await client.run_workflow("Kept", "ret-done", {"wait": False}, timeout=20) == "done"
        done = await client.describe("ret-done")
        # The id's first run ends; a second run of the same id is still waiting when the first is removed.
        assert await client.run_workflow("Kept", "ret-again", {"wait": False}, timeout=20) == "done"
        first_of_again = await client.describe("ret-again")
        await client.start_workflow("Kept", "ret-again", {"wait": True})
        await client.start_workflow("Kept", "ret-active", {"wait": True})
        second_of_again = await client.describe("ret-again")
        # Every record of the run is there (a step claim only where a step ran something live).
        stored = await records(connection.nc, done)
        assert all(n > 0 for subject, n in stored.items() if ".claim." not in subject)

        async def removed(run: RunInfo = done) -> bool:
            return not any((await records(connection.nc, run)).values())

        await wait_for(removed, timeout=15)
        await wait_for(lambda: _gone(client, "ret-done"), timeout=5)
        await wait_for(lambda: removed(first_of_again), timeout=15)
        # What is still running is whole, and the pointer of the id's newer run was left alone.
        active = await client.describe("ret-active")
        assert all(n > 0 for k, n in (await records(connection.nc, active)).items()
                   if ".output" not in k and ".claim." not in k)
        assert (await client.describe("ret-again")).id == second_of_again.id
        handle = await client.get_workflow_handle("ret-again")
        await handle.send("finish")
        assert await handle.result(timeout=20) == "finished"


async def _gone(client: Client, wf_id: str) -> bool:
    try:
        await client.describe(wf_id)
    except WorkflowNotFoundError:
        return True
    return False


async def test_a_stream_without_pointers_gets_them_once(connection: Connection) -> None:
    """A stream written before the pointers existed: each workflow id's latest run-info record makes its
    pointer; the layout marker says it is done."""
    await jetstream.ensure_stream(connection.js)
    older = RunInfo(id="r1", wf_id="old-wf", wf_type="T")
    newer = RunInfo(id="r2", wf_id="old-wf", wf_type="T")
    for info in (older, newer, RunInfo(id="r9", wf_id="other-wf", wf_type="U")):
        await jetstream.publish(connection.nc, subjects.run_info(info.wf_type, info.wf_id, info.id),
                                msgspec.msgpack.encode(info))
    assert await ensure_latest_pointers(connection.nc) == 2
    pointer = await direct.get_last(connection.nc, subjects.latest("old-wf"))
    assert pointer is not None and msgspec.msgpack.decode(pointer.data, type=LatestRun).run_id == "r2"
    assert (await direct.get_last(connection.nc, LAYOUT)) is not None
    assert await ensure_latest_pointers(connection.nc) == 0  # done once
