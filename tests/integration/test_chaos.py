"""Faults under load, with real processes: a file-backed nats-server, engine processes and worker
processes running three-step workflows (one task per step), while components are killed, restarted,
frozen (SIGSTOP) or cut off from NATS, one at a time or together (support/faults.py lists them).

Every run must complete with the right result: none failed, none lost, no task body run again after its
completion was recorded, every history complete (a ``step.started`` for every completed step). And
every fault must be shown to have hit work in flight: runs in flight when it struck and, for a worker's
fault, task bodies interrupted and run again elsewhere. tests/bench/bench_chaos.py runs the same
scenarios at a larger size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.chaos import System, find_duplicates, load_with_faults, run_load
from support.faults import SCENARIOS, Scenario, problems

from grctl.client.client import Client
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(240)

RUNS = 120  # enough for each fault to find runs in flight and runs after it
IN_FLIGHT = 60
DEADLINE = 120.0


@pytest.fixture
async def system(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[System]:
    s = System(tmp_path / "chaos", **getattr(request, "param", {}))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def connected(system: System) -> Connection:
    return await Connection.connect([system.url], name="grctl-chaos-client")


@pytest.mark.parametrize(("system", "scenario"), [(s.system, s) for s in SCENARIOS], indirect=["system"],
                         ids=[s.name for s in SCENARIOS])
async def test_fault_under_load(system: System, scenario: Scenario) -> None:
    conn = await connected(system)
    try:
        client = Client(conn)
        in_flight = IN_FLIGHT // 2 if len(system.workers) > 1 else IN_FLIGHT

        async def fault() -> None:
            await scenario.fault(system)

        verdict = await load_with_faults(client, RUNS, in_flight, DEADLINE + scenario.lasts, scenario.at,
                                         fault)
        await find_duplicates(client, system.work, verdict)
        found = problems(system, verdict, scenario, RUNS)
        assert not found, f"{found}; logs in {system.work}"
        assert len(verdict.faults) == len(scenario.at)
        assert all(p.poll() is None for p in system.engines), "an engine died"
        assert all(w.proc is not None and w.proc.poll() is None for w in system.workers), "a worker died"
        print(f"\n{scenario.name}: {verdict.summary()}")
    finally:
        await conn.close()


@pytest.mark.parametrize("system", [{"engines": 2}], indirect=True)
async def test_two_engines_record_every_step_start(system: System) -> None:
    """Two engines share the directives: a step's pick-up and its result can reach different engines, and
    the result may be applied first. The history must still hold every ``step.started``."""
    conn = await connected(system)
    try:
        verdict = await run_load(Client(conn), RUNS, IN_FLIGHT, DEADLINE)
        await find_duplicates(Client(conn), system.work, verdict)
        assert verdict.clean and verdict.ok == RUNS, f"{verdict.summary()}; {verdict.details()}"
    finally:
        await conn.close()


async def test_a_missing_task_log_fails_the_verdict(system: System) -> None:
    """The check of task bodies cannot pass by having read nothing."""
    conn = await connected(system)
    try:
        verdict = await run_load(Client(conn), 5, 5, DEADLINE)
        (system.work / "tasks.log").unlink()
        await find_duplicates(Client(conn), system.work, verdict)
        assert len(verdict.incomplete) == 5 and not verdict.clean
    finally:
        await conn.close()
