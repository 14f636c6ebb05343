"""Delayed start on a real engine, nats-server and worker: the run exists at once (pending, no history),
starts at its time, and a cancel before then ends it for good (docs/protocol.md#delayed-start)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from support.cli_run import grctl
from support.sdk import StartWorker, kinds, wait_for

from grctl.client.client import Client
from grctl.models import Directive
from grctl.models.common import RunStatus, utcnow
from grctl.worker.context import Context
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)

later = Workflow("Later")


@later.start()
async def later_start(ctx: Context) -> Directive:
    return ctx.next.complete("done")




async def test_a_delayed_run_exists_at_once_and_starts_at_its_time(client: Client,
                                                                   start_worker: StartWorker) -> None:
    await start_worker(later)
    start_at = utcnow() + timedelta(seconds=2)
    handle = await client.start_workflow("Later", "later-1", start_at=start_at)
    info = await client.describe("later-1")
    assert info.status == RunStatus.pending and info.id == handle.run_id
    assert info.scheduled_at is not None and abs((info.scheduled_at - start_at).total_seconds()) < 0.001
    assert await client.get_history("later-1") == []
    assert await handle.result(timeout=20) == "done"
    started = (await client.describe("later-1")).started_at
    assert started is not None and started >= start_at
    with pytest.raises(ValueError, match="not both"):
        await client.start_workflow("Later", "later-x", start_at=start_at, start_delay=1)


async def test_a_delayed_run_cancelled_before_its_time_never_starts(client: Client, start_worker: StartWorker,
                                                                    subprocess_env: dict[str, str]) -> None:
    await start_worker(later)
    started = await grctl(subprocess_env, "start", "Later", "--id", "later-2", "--in", "2s")
    assert started.rc == 0 and "Started workflow later-2" in started.out, started
    assert (await client.describe("later-2")).status == RunStatus.pending
    handle = await client.get_workflow_handle("later-2")
    await handle.cancel("not needed after all")

    async def cancelled() -> bool:
        return (await client.describe("later-2")).status == RunStatus.cancelled

    await wait_for(cancelled, timeout=10)
    await asyncio.sleep(3)  # past the start time: the delayed start came and changed nothing
    assert (await client.describe("later-2")).status == RunStatus.cancelled
    history = await client.get_history("later-2")
    assert "run.started" not in kinds(history) and kinds(history, "run.") == ["run.cancelled"]
    await handle.close()


async def test_start_delay_and_at_say_when_the_run_starts(client: Client, start_worker: StartWorker,
                                                         subprocess_env: dict[str, str]) -> None:
    await start_worker(later)
    before = utcnow()
    handle = await client.start_workflow("Later", "later-3", start_delay=timedelta(seconds=1.5))
    info = await client.describe("later-3")
    assert info.status == RunStatus.pending and info.scheduled_at is not None
    assert before + timedelta(seconds=1.5) <= info.scheduled_at <= utcnow() + timedelta(seconds=1.5)
    assert await handle.result(timeout=20) == "done"
    started = (await client.describe("later-3")).started_at
    assert started is not None and started >= info.scheduled_at

    at = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    created = await grctl(subprocess_env, "start", "Later", "--id", "later-4", "--at", at.isoformat())
    assert created.rc == 0, created
    described = await grctl(subprocess_env, "describe", "later-4")
    assert "Status:          pending" in described.out, described
    assert f"Starts at:       {at:%Y-%m-%d %H:%M:%S}" in described.out, described
    as_json = await grctl(subprocess_env, "describe", "later-4", "--json")
    assert as_json.rc == 0 and at.isoformat().replace("+00:00", "") in as_json.out, as_json
    await (await client.get_workflow_handle("later-4")).terminate("not needed")
