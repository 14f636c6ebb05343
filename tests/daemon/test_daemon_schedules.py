"""Schedules end to end on real processes: two grctld hosts (each with its embedded engine, so two
engines) declare one schedule against one nats-server; an engine killed for 10 s catches up inside
its window. Runs are counted by their workflow ids (``{schedule}@{tick}``)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import wait_engine_ready
from daemonkit import ROOT, Daemon, config_text, daemon_env, write_atomic, write_flows
from support.scrape import aget, value

from grctl.client.client import Client
from grctl.models.schedule import ScheduleView
from grctl.nats.connection import Connection
from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(180)

EVERY = 2
TICK_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def schedule(every: int = EVERY, window: str = "1m") -> str:
    return (f"schedules:\n  tick:\n    workflow: Quick\n    input: {{n: 1}}\n    every: {every}s\n"
            f"    catchup_window: {window}\n    overlap: allow_all\n")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


@pytest.fixture
async def client(nats_url: str) -> AsyncIterator[Client]:
    conn = await Connection.connect([nats_url])
    yield Client(conn)
    await conn.close()


def host(tmp_path: Path, name: str, nats_url: str, env: dict[str, str], extra: str,
         engine: bool = True) -> tuple[Daemon, Path]:
    home = tmp_path / name
    write_flows(home / "flows", name)
    config = home / "grctl.yaml"
    write_atomic(config, config_text([nats_url], engine=engine, extra=extra))
    return Daemon(config, daemon_env(env, home)).start(), config


async def tick_runs(client: Client) -> dict[datetime, int]:
    """Tick time → how many runs have its workflow id."""
    found: dict[datetime, int] = {}
    for run in await client.list_runs(type="Quick", limit=1000):
        if run.wf_id.startswith("tick@"):
            tick = datetime.strptime(run.wf_id.removeprefix("tick@"), TICK_FORMAT).replace(tzinfo=UTC)
            found[tick] = found.get(tick, 0) + 1
    return found


def gaps(ticks: list[datetime]) -> list[datetime]:
    """Ticks missing between the first and the last of ``ticks``."""
    first, last = min(ticks), max(ticks)
    count = int((last - first).total_seconds()) // EVERY
    expected = [first + timedelta(seconds=EVERY * i) for i in range(count)]
    return [t for t in expected if t not in ticks]


async def view(client: Client) -> ScheduleView:
    return next(v for v in await client.list_schedules() if v.state.id == "tick")


async def test_two_hosts_two_engines_one_run_per_tick_then_conflict_and_removal(
        tmp_path: Path, nats_url: str, subprocess_env: dict[str, str], daemons: list[Daemon],
        client: Client) -> None:
    a, config_a = host(tmp_path, "a", nats_url, subprocess_env, schedule())
    b, config_b = host(tmp_path, "b", nats_url, subprocess_env, schedule())
    daemons += [a, b]
    for d in (a, b):
        d.wait_for(r"schedules in force from this file: tick", timeout=60)
    await asyncio.sleep(20)
    runs = await tick_runs(client)
    assert len(runs) >= 20 // EVERY - 1
    assert gaps(list(runs)) == []
    # A run per tick is certain (its id is the tick's); that each tick was handled once is not, and the
    # engines' logs show it: one start per tick across both hosts, and no tick that found its run.
    logs = a.output + "\n" + b.output
    started = re.findall(r"schedule tick: tick (\S+) started tick@", logs)
    assert len(started) >= len(runs) - 1 and len(started) == len(set(started)), started
    assert "has its run already" not in logs

    # b now declares it differently: reported, and the definition in force stays a's.
    mark = b.mark()
    write_atomic(config_b, config_text([nats_url], engine=True, extra=schedule(every=4)))
    b.wait_for(r"schedule tick not applied: .*declared differently by .*every: 2\.0 vs 4\.0", after=mark)
    current = await view(client)
    assert current.state.spec is not None and current.state.spec.every == EVERY
    assert "declared differently" in current.state.conflict

    # b drops it: a's definition agrees with itself again; then a drops it: no more ticks.
    mark = a.mark()
    mark_b = b.mark()
    write_atomic(config_b, config_text([nats_url], engine=True))
    b.wait_for(r"schedules in force from this file: none; still declared by other hosts: tick", after=mark_b)
    assert (await view(client)).state.conflict == ""
    write_atomic(config_a, config_text([nats_url], engine=True))
    a.wait_for(r"schedules in force from this file: none; removed: tick", after=mark)
    removed_at = datetime.now(UTC)
    await asyncio.sleep(3 * EVERY)
    after = [t for t in await tick_runs(client) if t > removed_at + timedelta(seconds=1)]
    assert after == [], f"ticks fired after the schedule was removed: {after}"
    assert "tick" not in {v.state.id for v in await client.list_schedules()}
    runs = await tick_runs(client)
    assert all(n == 1 for n in runs.values()) and gaps(list(runs)) == []


def engine(nats_url: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", nats_url, *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


async def test_engine_killed_for_ten_seconds_catches_up_inside_the_window(
        tmp_path: Path, nats_url: str, subprocess_env: dict[str, str], daemons: list[Daemon],
        client: Client) -> None:
    eng = engine(nats_url, subprocess_env, tmp_path / "engine.log")
    try:
        await wait_engine_ready(nats_url)
        d, _ = host(tmp_path, "w", nats_url, subprocess_env, schedule(window="6s"), engine=False)
        daemons.append(d)
        d.wait_for(r"schedules in force from this file: tick", timeout=60)
        await asyncio.sleep(3 * EVERY)
        eng.send_signal(signal.SIGKILL)
        eng.wait(10)
        killed = datetime.now(UTC)
        await asyncio.sleep(10)
        http = f"127.0.0.1:{free_port()}"
        eng = engine(nats_url, subprocess_env, tmp_path / "engine.log", "--http", http)
        await wait_engine_ready(nats_url, timeout=60)
        await asyncio.sleep(3 * EVERY)
        runs = await tick_runs(client)
        state = (await view(client)).state
        metrics = (await aget(f"http://{http}/metrics"))[1]
    finally:
        eng.send_signal(signal.SIGTERM)
        eng.wait(20)
    assert all(n == 1 for n in runs.values()), f"a tick ran twice: {runs}"
    down = [t for t in gaps(list(runs)) if t > killed - timedelta(seconds=EVERY)]
    # The ticks of the outage older than the window at the restart are missed; the newer ones ran, late.
    assert down and state.missed == len(gaps(list(runs))) == len(down)
    late = [t for t in runs if killed < t < killed + timedelta(seconds=10)]
    assert late and min(late) > max(down), f"missed {down}, caught up {late}"
    # The restarted engine counted what it did: the missed ticks, the late ones it caught up, the rest.
    assert value(metrics, "grctl_schedule_ticks_total", schedule="tick", outcome="missed") == len(down)
    assert value(metrics, "grctl_schedule_ticks_late_total", schedule="tick") >= len(late) - 1 >= 1
    assert value(metrics, "grctl_schedule_ticks_total", schedule="tick", outcome="fired") >= len(late)
    assert value(metrics, "grctl_schedule_tick_lateness_seconds_count", schedule="tick") >= len(late)
