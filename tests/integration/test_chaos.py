"""Faults under load, with real processes: a file-backed nats-server, an engine process and worker
processes running three-step workflows (one task per step), while one component is killed or
restarted. Every run must complete with the right result: none failed, none lost, and no task body run
again after its completion was recorded. tests/bench/bench_chaos.py runs the same at a larger size."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.chaos import System, Verdict, find_duplicates, load_with_faults, run_load
from support.proxy import BlackholeProxy

from grctl.client.client import Client
from grctl.engine.manager import ACK_WAIT
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(240)

RUNS = 200
IN_FLIGHT = 100
DEADLINE = 120.0


@pytest.fixture
async def system(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[System]:
    s = System(tmp_path / "chaos", **getattr(request, "param", {}))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def verdict_of(system: System, client: Client, verdict: Verdict) -> Verdict:
    """0 failed, 0 lost, no task body run again after its completion was recorded, every history
    complete, and proof that each fault hit runs in flight."""
    await find_duplicates(client, system.work, verdict)
    assert verdict.clean, f"{verdict.summary()}; {verdict.details()}; logs in {system.work}"
    assert verdict.ok == RUNS
    assert verdict.task_bodies >= 3 * RUNS
    for moment in verdict.faults:
        assert verdict.in_flight_at(moment) > 0, f"a fault hit no run in flight: {verdict.summary()}"
    print(f"\n{verdict.summary()}")
    return verdict


async def connected(system: System) -> Connection:
    return await Connection.connect([system.url], name="grctl-chaos-client")


async def test_engine_killed_twice(system: System) -> None:
    conn = await connected(system)

    async def kill_engine() -> None:
        system.kill_engine()
        await asyncio.sleep(1.0)
        system.start_engine()

    try:
        client = Client(conn)
        verdict = await load_with_faults(client, RUNS, IN_FLIGHT, DEADLINE, (0.3, 0.6), kill_engine)
        await verdict_of(system, client, verdict)
        assert system.engine_starts == 3
    finally:
        await conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_nats_server_restarted(system: System, sig: signal.Signals) -> None:
    conn = await connected(system)

    async def restart() -> None:
        await system.restart_nats(2.0, sig)

    try:
        client = Client(conn)
        verdict = await load_with_faults(client, RUNS, IN_FLIGHT, DEADLINE, (0.3,), restart)
        await verdict_of(system, client, verdict)
    finally:
        await conn.close()


@pytest.mark.parametrize("system", [{"workers": 2, "worker_env": {"GRCTL_CHAOS_TASK_SECONDS": "0.2"}}],
                         indirect=True)
async def test_workers_killed_and_replaced(system: System) -> None:
    conn = await connected(system)

    async def replace_one() -> None:
        await system.replace_worker(system.worker_starts % len(system.workers))

    try:
        client = Client(conn)
        verdict = await load_with_faults(client, RUNS, IN_FLIGHT // 2, DEADLINE, (0.2, 0.5, 0.8),
                                         replace_one)
        await verdict_of(system, client, verdict)
        assert system.worker_starts == 5
        # the killed workers were running task bodies: they ran again on the other worker
        assert verdict.task_bodies > 3 * RUNS, verdict.summary()
    finally:
        await conn.close()


@pytest.mark.parametrize("system", [{"engines": 2}], indirect=True)
async def test_two_engines_record_every_step_start(system: System) -> None:
    """Two engines share the directives: a step's pick-up and its result can reach different engines, and
    the result may be applied first. The history must still hold every ``step.started``."""
    conn = await connected(system)
    try:
        verdict = await run_load(Client(conn), RUNS, IN_FLIGHT, DEADLINE)
        await verdict_of(system, Client(conn), verdict)
    finally:
        await conn.close()


@pytest.mark.parametrize("system", [{"engines": 2}], indirect=True)
async def test_two_engines_one_killed_history_complete(system: System) -> None:
    conn = await connected(system)

    async def kill_one() -> None:
        system.kill_engine(0)

    try:
        verdict = await load_with_faults(Client(conn), RUNS, IN_FLIGHT, DEADLINE, (0.3,), kill_one)
        await verdict_of(system, Client(conn), verdict)
        assert len(system.engines) == 1 and system.engines[0].poll() is None
    finally:
        await conn.close()


# --- compound faults and frozen processes --------------------------------------------------------

FROZEN = ACK_WAIT + 3.0  # longer than every ack wait (the engine's directives, the workers' tasks: 5 s)
SLOW_TASKS = {"GRCTL_CHAOS_TASK_SECONDS": "0.2"}  # a kill or a freeze then catches task bodies running


@pytest.mark.parametrize("system", [{"workers": 2, "worker_env": SLOW_TASKS}], indirect=True)
async def test_engine_and_worker_killed_at_once(system: System) -> None:
    conn = await connected(system)

    async def kill_both() -> None:
        system.kill_engine()
        system.workers.pop(0).kill()
        system.start_engine()  # a worker registers through the engine: the engine first
        await system.start_worker()

    try:
        verdict = await load_with_faults(Client(conn), RUNS, IN_FLIGHT // 2, DEADLINE, (0.3,), kill_both)
        await verdict_of(system, Client(conn), verdict)
        assert verdict.task_bodies > 3 * RUNS, "the worker's kill interrupted no task body"
    finally:
        await conn.close()


@pytest.mark.parametrize("system", [{"workers": 2, "worker_env": SLOW_TASKS}], indirect=True)
async def test_nats_server_and_worker_killed_at_once(system: System) -> None:
    conn = await connected(system)

    async def kill_both() -> None:
        victim = system.workers.pop(0)
        victim.kill()
        await system.restart_nats(1.0, signal.SIGKILL)
        await system.start_worker()

    try:
        verdict = await load_with_faults(Client(conn), RUNS, IN_FLIGHT // 2, DEADLINE, (0.3,), kill_both)
        await verdict_of(system, Client(conn), verdict)
        assert verdict.task_bodies > 3 * RUNS, "the worker's kill interrupted no task body"
    finally:
        await conn.close()


@pytest.mark.parametrize("system", [{"engines": 1}, {"engines": 2}], indirect=True,
                         ids=["alone", "with-a-second"])
async def test_engine_frozen_longer_than_every_ack_wait(system: System) -> None:
    conn = await connected(system)

    async def freeze() -> None:
        await system.freeze_engine(FROZEN)

    try:
        verdict = await load_with_faults(Client(conn), RUNS, IN_FLIGHT, DEADLINE + FROZEN, (0.3,), freeze)
        await verdict_of(system, Client(conn), verdict)
        assert all(engine.poll() is None for engine in system.engines), "a frozen engine died"
    finally:
        await conn.close()


@pytest.mark.parametrize("system", [{"workers": 2, "worker_env": SLOW_TASKS}], indirect=True)
async def test_worker_frozen_longer_than_its_ack_wait(system: System) -> None:
    """Its steps go to the other worker; when it wakes, what it reports must not undo their work."""
    conn = await connected(system)

    async def freeze() -> None:
        await system.freeze_worker(FROZEN)

    try:
        verdict = await load_with_faults(Client(conn), RUNS, IN_FLIGHT // 2, DEADLINE + FROZEN, (0.3,),
                                         freeze)
        await verdict_of(system, Client(conn), verdict)
        assert verdict.task_bodies > 3 * RUNS, "the frozen worker held no task body that moved elsewhere"
    finally:
        await conn.close()


@pytest.mark.parametrize("system", [{"workers": 1, "worker_env": SLOW_TASKS}], indirect=True)
async def test_worker_cut_off_from_nats_longer_than_its_ack_wait(system: System) -> None:
    """A second worker reaches nats-server through a proxy that drops everything for longer than the ack
    wait, then lets it reconnect: its steps move to the first worker, and what it sends after
    reconnecting must not undo their work."""
    host, port = system.url.removeprefix("nats://").rsplit(":", 1)
    proxy = await BlackholeProxy(host, int(port)).start()
    await system.start_worker(proxy.url)
    conn = await connected(system)

    async def cut_off() -> None:
        proxy.cut()
        await asyncio.sleep(FROZEN)
        proxy.restore()

    try:
        verdict = await load_with_faults(Client(conn), RUNS, IN_FLIGHT // 2, DEADLINE + FROZEN, (0.3,),
                                         cut_off)
        await verdict_of(system, Client(conn), verdict)
        assert verdict.task_bodies > 3 * RUNS, "the cut-off worker held no task body that moved elsewhere"
        assert proxy.connections >= 2, "the cut-off worker did not reconnect"
        assert all(w.proc is not None and w.proc.poll() is None for w in system.workers)
    finally:
        await conn.close()
        await proxy.stop()
