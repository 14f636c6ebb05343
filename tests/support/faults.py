"""The fault scenarios of tests/integration/test_chaos.py (small) and tests/bench/bench_chaos.py (large),
defined once: which system they need, when the fault strikes (fractions of the runs finished), what it
does, and what proves it hit work in flight. ``DISK_FULL`` is bench_chaos's alone: its small form is
tests/integration/test_storage_full.py."""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

from grctl import settings
from grctl.client.client import Client
from grctl.models.errors import StorageFullError
from grctl.nats.connection import Connection
from support.chaos import System
from support.storage_full import AT_ONCE, CHUNK, fill, full_signs, make_room
from support.wf_chaos import TASK_SECONDS_ENV

# Longer than every ack wait: the engine's directives and the workers' tasks.
FROZEN = max(settings.ENGINE_ACK_WAIT, settings.WORKER_ACK_WAIT) + 3.0
# Task bodies that take a while: a kill or a freeze of their worker then interrupts some, which run
# again on another worker (two lines in the task log): the proof that the fault hit a worker's work.
SLOW_TASKS = {TASK_SECONDS_ENV: "0.2"}


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Callable[[System], Awaitable[None]]
    at: tuple[float, ...] = (0.3,)
    system: dict[str, Any] = field(default_factory=dict)  # System's keyword arguments
    interrupts_tasks: bool = False  # the fault must make task bodies run again elsewhere
    lasts: float = 0.0  # seconds the fault holds the system: added to the deadline
    # A start refused for lack of storage is counted apart and sent again after this pause (None: it
    # is a start error, as any other refusal)
    refusal_pause: float | None = None
    # run once the system is up, before the load of that many runs
    prepare: Callable[[System, int], Awaitable[None]] | None = None


async def kill_engine(system: System) -> None:
    system.kill_engine()
    await asyncio.sleep(1.0)
    system.start_engine()


async def replace_worker(system: System) -> None:
    await system.replace_worker(system.worker_starts % len(system.workers))


async def kill_engine_and_worker(system: System) -> None:
    await system.kill_worker_busy(0)
    system.kill_engine()
    system.start_engine()  # a worker registers through the engine: the engine first
    await system.start_worker()


async def kill_nats_and_worker(system: System) -> None:
    await system.kill_worker_busy(0)
    await system.restart_nats(1.0, signal.SIGKILL)
    await system.start_worker()


async def kill_one_of_two_engines(system: System) -> None:
    system.kill_engine(0)


async def freeze_engine(system: System) -> None:
    await system.freeze_engine(FROZEN)


async def freeze_worker(system: System) -> None:
    await system.freeze_worker(FROZEN)


async def cut_worker_off(system: System) -> None:
    assert system.proxy is not None
    system.proxy.cut()
    await asyncio.sleep(FROZEN)
    system.proxy.restore()


async def restart_nats_term(system: System) -> None:
    await system.restart_nats(2.0, signal.SIGTERM)


async def restart_nats_kill(system: System) -> None:
    await system.restart_nats(2.0, signal.SIGKILL)


# Bytes a run may write, four times what a Chaos run writes (about 25 kB): the room left before the
# load, enough for every run, is filled by the fault in a moment while the load still runs.
RUN_BYTES = 100_000


async def leave_headroom(system: System, runs: int) -> None:
    """Fill the store, then give back room for ``runs`` runs (at least 4 MB)."""
    conn = await Connection.connect([system.url], name="grctl-store-filler")
    try:
        headroom = max(4, math.ceil(runs * RUN_BYTES / len(CHUNK)))
        await make_room(conn, keep=max(0, await fill(conn) // len(CHUNK) - headroom))
    finally:
        await conn.close()


ARRIVAL = 0.1  # seconds between the starts of new clients while the store is full


async def fill_store(system: System) -> None:
    """Fill the store while runs are in flight, keep it full for ``FROZEN`` seconds (longer than every
    ack wait: held work is redelivered while nothing can be written) while new clients keep arriving (a
    start every ``ARRIVAL`` s, to be refused at once: the load itself starts little then, its runs in
    flight being stuck), note what the engine's listener shows, then give room back without restarting
    anything. Room freed meanwhile (messages consumed and removed) is filled again at each arrival, as
    other writers of a full disk would take it; what slips in first is counted (``System.accepted_full``)."""
    assert system.ops is not None
    conn = await Connection.connect([system.url], name="grctl-store-filler")
    try:
        filled = await fill(conn, down_to=100)  # full for the smallest write too
        client = Client(conn)
        full_at = time.monotonic()
        while time.monotonic() < full_at + FROZEN:
            began = time.monotonic()
            try:
                handle = await client.start_workflow("Chaos", f"disk-full-arrival-{ULID()}".lower(), {"n": 0})
                await handle.close()
                system.accepted_full += 1
            except StorageFullError:
                system.refusals.append(time.monotonic() - began)
            if len(system.refusals) == 1:  # the engine has met the full store, whatever the load did
                signs = await full_signs(system.ops)
                system.notes.append(f"store full after {filled / 1e6:.1f} MB of filler: /readyz "
                                    f"{signs.readyz} ({signs.reason.strip()}), grctl_engine_storage_full "
                                    f"{signs.gauge:g}, refusals counted {signs.refusals:g}")
                system.defects += signs.defects()
            await asyncio.sleep(ARRIVAL)
            await fill(conn, down_to=100)
        system.full_window = (full_at, time.monotonic())
        await make_room(conn)
    finally:
        await conn.close()


TWO_SLOW_WORKERS = {"workers": 2, "worker_env": SLOW_TASKS}

SCENARIOS = [
    Scenario("engine-kill", kill_engine, at=(0.3, 0.6)),
    Scenario("nats-term", restart_nats_term),
    Scenario("nats-kill", restart_nats_kill),
    Scenario("worker-kill", replace_worker, at=(0.2, 0.5, 0.8), system=TWO_SLOW_WORKERS,
             interrupts_tasks=True),
    Scenario("two-engines-one-killed", kill_one_of_two_engines, system={"engines": 2}),
    Scenario("engine-and-worker-kill", kill_engine_and_worker, system=TWO_SLOW_WORKERS,
             interrupts_tasks=True),
    Scenario("nats-and-worker-kill", kill_nats_and_worker, system=TWO_SLOW_WORKERS, interrupts_tasks=True),
    Scenario("engine-freeze", freeze_engine, lasts=FROZEN),
    Scenario("engine-freeze-with-a-second", freeze_engine, system={"engines": 2}, lasts=FROZEN),
    Scenario("worker-freeze", freeze_worker, system=TWO_SLOW_WORKERS, interrupts_tasks=True, lasts=FROZEN),
    Scenario("worker-cut-off", cut_worker_off, system={"workers": 1, "proxied_workers": 1,
                                                       "worker_env": SLOW_TASKS}, lasts=FROZEN),
]
# The store on a 128 MB tmpfs: room for the runs of a large load once the filler is gone. Its deadline
# also covers the filling and the refused starts sent again.
DISK_FULL = Scenario("disk-full", fill_store, system={"store_mb": 128, "engine_http": True},
                     lasts=FROZEN + 30.0, refusal_pause=0.5, prepare=leave_headroom)
BY_NAME = {s.name: s for s in [*SCENARIOS, DISK_FULL]}


def problems(system: System, verdict: Any, scenario: Scenario, runs: int) -> list[str]:
    """What the verdict of ``scenario`` must not show (empty when it passed): a run not completed right,
    a task body run after its completion was recorded, an incomplete history or task log, or a fault
    that hit nothing."""
    found = list(system.defects)
    if system.full_window is not None:
        if verdict.in_flight_at(system.full_window[0]) == 0:
            found.append("no run was in flight when the store was full (the load was over)")
    if scenario.refusal_pause is not None and not (verdict.refusals or system.refusals):
        found.append("the full store refused no start")
    if max(verdict.refusals + system.refusals, default=0.0) >= AT_ONCE:
        found.append(f"a refusal took {max(verdict.refusals + system.refusals):.1f} s: a timeout, not an "
                     "answer")
    if system.proxy is not None and system.proxy.dropped == 0:
        found.append("the partition cut off no traffic of the worker behind it")
    if not verdict.clean or verdict.ok != runs:
        found.append(f"{verdict.summary()}; {verdict.details()}")
    for moment in verdict.faults:
        if verdict.in_flight_at(moment) == 0:
            found.append(f"a fault hit no run in flight: {verdict.summary()}")
    if scenario.interrupts_tasks and verdict.task_bodies <= 3 * runs:
        found.append(f"the fault interrupted no task body: {verdict.summary()}")
    return found
