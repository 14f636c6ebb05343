"""Listing runs (``Client.list_runs``, the engine's ``run.list``) against a real engine and worker: newest
first, the status, type and age filters, the limit, runs stored before the engine started, and runs
removed after the retention left out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from support import wf_simple
from support.sdk import wait_for, workers
from support.wf_cli import cli_flow
from support.wf_simple import one_step

from grctl.client.client import Client
from grctl.engine import Engine
from grctl.engine.runindex import RunIndex
from grctl.models.common import RunInfo, RunStatus, utcnow
from grctl.nats import subjects
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def served(engine: Engine, nats_url: str, connection: Connection, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    monkeypatch.setattr(wf_simple, "DIR", tmp_path)  # where OneStep notes its executions
    async with workers(nats_url) as start:
        await start(cli_flow, one_step)
        yield Client(connection)


async def _runs(client: Client) -> dict[str, str]:
    """Start 3 completed, 2 failed and 1 waiting CliFlow runs and 2 OneStep runs; {wf_id: status}."""
    expected: dict[str, str] = {}
    for i in range(3):
        await client.run_workflow("CliFlow", f"ok-{i}", {"mode": "ok"})
        expected[f"ok-{i}"] = "completed"
    for i in range(2):
        handle = await client.start_workflow("CliFlow", f"bad-{i}", {"mode": "fail"})
        with pytest.raises(Exception, match="cli exploded"):
            await handle.result(timeout=10)
        await handle.close()
        expected[f"bad-{i}"] = "failed"
    for i in range(2):
        await client.run_workflow("OneStep", f"one-{i}", {"n": i})
        expected[f"one-{i}"] = "completed"
    handle = await client.start_workflow("CliFlow", "waiting", {"mode": "wait"})
    await handle.close()
    expected["waiting"] = "running"

    async def indexed() -> bool:  # the index follows the stream: a moment after the commit
        return {r.wf_id: str(r.status) for r in await client.list_runs()} == expected

    await wait_for(indexed, timeout=10)
    return expected


async def test_list_filters_and_orders_newest_first(served: Client) -> None:
    client = served
    expected = await _runs(client)
    order = list(expected)  # in start order

    async def listed(**query: object) -> list[str]:
        return [r.wf_id for r in await client.list_runs(**query)]  # type: ignore[arg-type]

    everything = await client.list_runs()
    assert [r.wf_id for r in everything] == order[::-1]
    assert {r.wf_id: str(r.status) for r in everything} == expected
    assert await listed(status="failed") == ["bad-1", "bad-0"]
    assert await listed(status=[RunStatus.failed, "running"]) == ["waiting", "bad-1", "bad-0"]
    assert await listed(type="OneStep") == ["one-1", "one-0"]
    assert await listed(type="OneStep", status="failed") == []
    assert await listed(limit=2) == ["waiting", "one-1"]
    assert await listed(since=timedelta(minutes=5)) == order[::-1]
    assert await listed(since=utcnow() + timedelta(minutes=1)) == []
    with pytest.raises(ValueError):
        await client.list_runs(status="exploded")


async def test_a_new_engine_lists_what_was_stored_before_it_started(served: Client, nats_url: str) -> None:
    expected = await _runs(served)
    conn = await Connection.connect([nats_url])
    second = Engine(conn, sweep_interval=3600)
    await second.start()
    try:
        assert await second.runs.wait_loaded(10)
        found = second.runs.query(utcnow(), limit=100)
        assert len(found) == len(expected)
    finally:
        await second.stop(timeout=5)
        await conn.close()


async def test_finished_runs_past_the_retention_are_left_out(served: Client, engine: Engine) -> None:
    await _runs(served)
    later = utcnow() + timedelta(days=8)  # the default retention is 7 days
    remaining = engine.runs.query(later, limit=100)
    assert len(remaining) == 1  # only the run that has not ended
    assert len(engine.runs) == 1  # the others are forgotten


async def test_once_loaded_the_index_holds_no_consumer_and_still_follows_new_runs(
        served: Client, nats_url: str) -> None:
    """A consumer over every run's record makes the server recount it at each run removed (its cost
    grows with the runs stored): once loaded, the index reads new records from a cursor instead, and
    sees those another engine writes."""
    first = await _runs(served)
    conn = await Connection.connect([nats_url])
    second = Engine(conn, sweep_interval=3600)
    await second.start()
    try:
        assert await second.runs.wait_loaded(10)

        async def no_index_consumer() -> bool:
            infos = await conn.js.consumers_info(subjects.STREAM)
            return not [c for c in infos if (c.config.filter_subject or "").startswith("grctl_run.")]

        await wait_for(no_index_consumer, timeout=10)
        await served.run_workflow("OneStep", "after-load", {"n": 9})  # answered by either engine

        async def follows() -> bool:
            listed = {info.wf_id for raw in second.runs.query(utcnow(), limit=100)
                      for info in [msgspec.msgpack.decode(raw, type=RunInfo)]}
            return listed == {*first, "after-load"}

        await wait_for(follows, timeout=10)
    finally:
        await second.stop(timeout=5)
        await conn.close()


def test_the_index_forgets_the_oldest_finished_runs_beyond_its_size() -> None:
    index = RunIndex(None, None, retention=None, max_runs=10)  # type: ignore[arg-type]
    now = utcnow()
    for i in range(20):
        status = RunStatus.running if i < 3 else RunStatus.completed
        info = RunInfo(id=f"r{i:02d}", wf_id=f"w{i}", wf_type="T", status=status,
                       created_at=now + timedelta(seconds=i), completed_at=None if i < 3 else now)
        index._add(msgspec.msgpack.encode(info), seq=i + 1, subject="s")
    index._evict()
    kept = {msgspec.msgpack.decode(raw, type=RunInfo).id for raw in index.query(utcnow(), limit=100)}
    assert kept == {"r00", "r01", "r02", *(f"r{i}" for i in range(13, 20))}  # active ones stay
