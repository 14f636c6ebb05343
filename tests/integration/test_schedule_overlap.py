"""Schedules on a real nats-server, engine process and worker process: each overlap policy does what it
says, trigger, pause/resume and backfill (docs/operations.md#schedules). The runs
(``support/wf_held.py``) wait for an event, so the test decides when the previous run of a schedule
ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from support.cli_run import grctl
from support.processes import WorkerProcess
from support.scrape import aget, value
from support.sdk import wait_for

from grctl.client.client import Client
from grctl.client.schedules import ScheduleCommands
from grctl.models.common import RunStatus, utcnow
from grctl.models.schedule import Overlap, ScheduleSpec, ScheduleView
from grctl.models.schedule_clock import tick_wf_id
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def worker(engine_http: str, subprocess_env: dict[str, str]) -> AsyncIterator[WorkerProcess]:
    """A worker process serving ``Held`` beside the engine process."""
    process = WorkerProcess("support.wf_held", subprocess_env).start()
    try:
        yield await process.ready()
    finally:
        process.kill()  # nothing to check about its shutdown


@pytest.fixture
def client(worker: WorkerProcess, connection: Connection) -> Client:
    return Client(connection)


async def views(client: Client) -> dict[str, ScheduleView]:
    return {v.state.id: v for v in await client.list_schedules()}


async def status(client: Client, wf_id: str) -> RunStatus:
    return (await client.describe(wf_id)).status


async def test_each_overlap_policy(client: Client, connection: Connection, engine_http: str) -> None:
    specs = {f"ov-{p.value.replace('_', '-')}": ScheduleSpec(workflow="Held", every=2.0, overlap=p)
             for p in Overlap}
    # A type no worker serves: each tick is tried again until it leaves its window, then counted missed.
    specs["no-worker"] = ScheduleSpec(workflow="Nobody", every=2.0, catchup_window=1.0)
    declared = await ScheduleCommands(connection, "c:test").declare("test-host:a", specs)
    assert sorted(declared.applied) == sorted(specs) and not declared.conflicts

    async def ticks_handled(n: int) -> bool:
        found = await views(client)
        return all(found[i].state.fired + found[i].state.skipped + found[i].state.missed
                   + (found[i].state.buffered is not None) >= n for i in specs)

    await wait_for(lambda: ticks_handled(3), timeout=30, interval=0.2)
    await client.pause_schedule("ov-allow-all")  # so the counts below stay put
    found = await views(client)
    first = {i: v.state for i, v in found.items()}

    nobody = first["no-worker"]
    assert nobody.fired == 0 and nobody.missed >= 3 and nobody.last_wf_id == ""

    skip = first["ov-skip"]
    assert skip.fired == 1 and skip.skipped >= 2 and skip.missed == 0
    assert await status(client, skip.last_wf_id) == RunStatus.running
    metrics = (await aget(f"http://{engine_http}/metrics"))[1]
    counted = value(metrics, "grctl_schedule_ticks_total", schedule="ov-skip", outcome="skipped")
    assert counted >= skip.skipped, metrics  # counted as it happens (it may have gone on since)
    assert value(metrics, "grctl_schedule_ticks_total", schedule="ov-skip", outcome="fired") == 1
    assert value(metrics, "grctl_schedule_ticks_total", schedule="no-worker", outcome="missed") >= 3

    allow = first["ov-allow-all"]
    assert allow.fired >= 3 and allow.skipped == 0
    assert await status(client, allow.last_wf_id) == RunStatus.running

    stopped = (("ov-cancel-other", RunStatus.cancelled), ("ov-terminate-other", RunStatus.terminated))
    for policy, ended in stopped:
        state = first[policy]
        assert state.fired >= 3 and state.skipped == 0
        runs = [r for r in await client.list_runs(type="Held", limit=1000)
                if r.wf_id.startswith(f"{policy}@")]
        older = [r for r in runs if r.wf_id != state.last_wf_id]
        assert older and len(runs) == state.fired

        async def others_ended(older: list[Any] = older, ended: RunStatus = ended) -> bool:
            return all([await status(client, r.wf_id) == ended for r in older])

        await wait_for(others_ended, timeout=20, interval=0.2)

    buffered = first["ov-buffer-one"]
    assert buffered.fired == 1 and buffered.buffered is not None and buffered.skipped >= 1
    waiting = tick_wf_id("ov-buffer-one", buffered.buffered)
    running = buffered.last_wf_id
    await (await client.get_workflow_handle(running)).send("release")

    async def buffered_started() -> bool:
        return (await views(client))["ov-buffer-one"].state.last_wf_id == waiting

    await wait_for(buffered_started, timeout=20, interval=0.2)
    assert await status(client, running) == RunStatus.completed


async def test_trigger_pause_resume_backfill(client: Client, connection: Connection,
                                             subprocess_env: dict[str, str]) -> None:
    spec = ScheduleSpec(workflow="Held", cron="0 3 * * *", timezone="Europe/Berlin",
                        overlap=Overlap.allow_all)
    await ScheduleCommands(connection, "c:test").declare("test-host:b", {"nightly": spec})
    view = (await views(client))["nightly"]
    assert len(view.next_fires) == 3 and all(t.hour in (1, 2) for t in view.next_fires)  # 03:00 Berlin

    outcome = await client.trigger_schedule("nightly")
    assert outcome.action == "started" and outcome.wf_id.startswith("nightly@")
    assert await status(client, outcome.wf_id) in (RunStatus.pending, RunStatus.running)

    paused = await client.pause_schedule("nightly", note="maintenance")
    assert paused.operator_paused and (await views(client))["nightly"].next_fires == []
    resumed = await client.resume_schedule("nightly")
    assert not resumed.operator_paused and resumed.next_tick is not None

    now = utcnow()
    filled = await client.backfill_schedule("nightly", now - timedelta(days=3), now)
    assert len(filled) == 3 and all(o.action == "started" for o in filled)
    again = await client.backfill_schedule("nightly", now - timedelta(days=3), now)
    assert [o.wf_id for o in again] == [o.wf_id for o in filled]  # one run per tick
    assert all(o.action == "exists" for o in again), again  # a repeat is reported, not started again
    runs = [r for r in await client.list_runs(type="Held", limit=1000) if r.wf_id.startswith("nightly@")]
    assert len(runs) == 4

    with pytest.raises(Exception, match="4008"):
        await client.trigger_schedule("no-such-schedule")

    # The same through the command line.
    paused = await grctl(subprocess_env, "schedule", "pause", "nightly", "--note", "disk full")
    assert paused.rc == 0, paused
    listed = await grctl(subprocess_env, "schedule", "list", "--json")
    assert listed.rc == 0, listed
    [row] = [r for r in json.loads(listed.out) if r["id"] == "nightly"]
    assert row["paused"] and row["pause_note"] == "disk full" and row["next_fires"] == []
    assert row["last_run"] == {"wf_id": outcome.wf_id, "status": "running"}
    assert row["fired"] == 4, row  # the trigger and three backfilled ticks; the repeats are not counted
    table = await grctl(subprocess_env, "schedule", "list")
    assert "nightly" in table.out and "0 3 * * * (Europe/Berlin)" in table.out, table
    resumed = await grctl(subprocess_env, "schedule", "resume", "nightly")
    assert resumed.rc == 0 and "resumed; next tick" in resumed.out, resumed
    filled = await grctl(subprocess_env, "schedule", "backfill", "nightly", "2d", "0s")
    assert filled.rc == 0 and filled.out.count("exists  nightly@") == 2, filled  # backfilled above
    filled = await grctl(subprocess_env, "schedule", "backfill", "nightly", "5d", "3d")
    assert filled.rc == 0 and filled.out.count("started  nightly@") == 2, filled
    triggered = await grctl(subprocess_env, "schedule", "trigger", "nightly")
    assert triggered.rc == 0 and "started  nightly@" in triggered.out, triggered
    unknown = await grctl(subprocess_env, "schedule", "trigger", "nope")
    assert unknown.rc != 0 and "Schedule not found" in unknown.err, unknown


async def test_a_redeclared_definition_takes_over_and_a_file_pause_holds(
        client: Client, connection: Connection) -> None:
    """One host changes a schedule (what a reload does): the new definition fires from then on, the old
    one no more. A schedule paused in its file fires nothing, and resume is refused until the file
    changes."""
    declarer = ScheduleCommands(connection, "c:test")
    fast = ScheduleSpec(workflow="Held", every=1.0, overlap=Overlap.allow_all)
    await declarer.declare("test-host:c", {"chg": fast, "held-in-file": ScheduleSpec(
        workflow="Held", every=1.0, paused=True)})

    async def fired(n: int) -> bool:
        return (await views(client))["chg"].state.fired >= n

    await wait_for(lambda: fired(2), timeout=20, interval=0.2)
    slow = ScheduleSpec(workflow="Held", cron="0 3 * * *", overlap=Overlap.allow_all)
    declared = await declarer.declare("test-host:c", {"chg": slow, "held-in-file": ScheduleSpec(
        workflow="Held", every=1.0, paused=True)})
    assert "chg" in declared.applied and not declared.conflicts
    changed = (await views(client))["chg"]
    assert changed.state.spec is not None and changed.state.spec.cron == "0 3 * * *"
    assert changed.next_fires and all((t.hour, t.minute) == (3, 0) for t in changed.next_fires)
    count = changed.state.fired
    await asyncio.sleep(3)  # three of the old definition's ticks would have fired by now
    assert (await views(client))["chg"].state.fired == count

    in_file = (await views(client))["held-in-file"]
    assert in_file.state.paused and in_file.state.fired == 0 and in_file.next_fires == []
    runs = await client.list_runs(type="Held", limit=1000)
    assert not [r for r in runs if r.wf_id.startswith("held-in-file@")]
    with pytest.raises(Exception, match="paused in the configuration file"):
        await client.resume_schedule("held-in-file")


async def test_a_retired_hosts_declarations_are_withdrawn(client: Client, connection: Connection,
                                                         subprocess_env: dict[str, str]) -> None:
    declarer = ScheduleCommands(connection, "c:test")
    nightly = ScheduleSpec(workflow="Held", cron="0 3 * * *")
    await declarer.declare("old-host:/etc/grctl/grctl.yaml", {"only-old": nightly, "shared": nightly})
    await declarer.declare("new-host:/etc/grctl/grctl.yaml", {"shared": nightly})
    found = await views(client)
    assert sorted(found["shared"].state.declared_by) == ["new-host:/etc/grctl/grctl.yaml",
                                                         "old-host:/etc/grctl/grctl.yaml"]

    withdrawn = await grctl(subprocess_env, "schedule", "withdraw", "old-host:/etc/grctl/grctl.yaml")
    assert withdrawn.rc == 0, withdrawn
    assert "schedule only-old removed" in withdrawn.out and "schedule shared stays" in withdrawn.out
    found = await views(client)
    assert "only-old" not in found and found["shared"].state.declared_by == ["new-host:/etc/grctl/grctl.yaml"]
    with pytest.raises(Exception, match="4008"):
        await client.withdraw_schedules("old-host:/etc/grctl/grctl.yaml")  # nothing left to withdraw
    result = await client.withdraw_schedules("new-host:/etc/grctl/grctl.yaml")
    assert result.removed == ["shared"] and "shared" not in await views(client)
