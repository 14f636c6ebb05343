"""Faults under load: N three-step ``Chaos`` workflows (one ``@task`` per step) through engine and worker
processes on a file-backed nats-server, while components are killed, restarted, frozen or cut off
(the scenarios of tests/support/faults.py, which the test suite runs small). Prints, per scenario, the
runs completed right, failed, lost and not started (apart: never inside the recovery figure), task
bodies run again after their completion was recorded, incomplete histories, the runs in flight at each
fault, and the time from each fault to the next run completed right. Exits 1 when a scenario lost,
failed or repeated anything.

    .venv/bin/python tests/bench/bench_chaos.py [-n 1000] [--concurrency 200] [--scenario NAME ...]

Scenarios: engine-kill (SIGKILL at 30 % and 60 %, restarted after 1 s), nats-term and nats-kill
(nats-server stopped at 30 %, back 2 s later), worker-kill (two workers, one SIGKILLed at 20, 50 and
80 %, replaced at once), two-engines-one-killed, engine-and-worker-kill and nats-and-worker-kill (at
the same moment), engine-freeze (SIGSTOP past every ack wait; also with a second engine running),
worker-freeze, worker-cut-off (a worker behind a proxy that drops everything past its ack wait),
disk-full (the store, on a 128 MB tmpfs, filled before the load but for room for its runs, filled up
at 30 % and kept full past every ack wait, then room given back without a restart; needs root to mount
the tmpfs). In
disk-full a start refused with 5070 "storage full" is counted apart (how many, how fast answered),
never as a run or a start error, and sent again 0.5 s later; as the load's own runs are stuck while the
store is full, new clients arrive then (a start every 0.1 s), each to be refused at once; the recovery
figure is the time from the room's return to the next run completed right.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from figures import exit_status, problem  # noqa: E402
from support.chaos import System, find_duplicates, load_with_faults  # noqa: E402
from support.faults import BY_NAME, DISK_FULL, SCENARIOS, Scenario, problems  # noqa: E402
from support.scrape import wait_status  # noqa: E402
from ulid import ULID  # noqa: E402

from grctl.client.client import Client  # noqa: E402
from grctl.models.errors import WorkflowError  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402

READY_AGAIN = 60.0  # seconds after the load for /readyz to say 200 again (the engine clears the condition
#                     5 s after the last refusal, once a commit was accepted since)


async def scenario(s: Scenario, n: int, concurrency: int, deadline: float) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"grctl-chaos-{s.name}-"))
    system = System(work, **s.system)
    await system.start()
    if s.prepare is not None:
        await s.prepare(system, n)
    conn = await Connection.connect([system.url], name="grctl-chaos-client")
    try:
        client = Client(conn)
        ended: list[float] = []  # when each fault was over (the component back)

        async def fault() -> None:
            await s.fault(system)
            ended.append(time.monotonic())

        verdict = await load_with_faults(client, n, concurrency, deadline + s.lasts, s.at, fault,
                                         s.refusal_pause)
        await find_duplicates(client, work, verdict)
        wall = verdict.ended_at - verdict.started_at
        print(f"{s.name:28s} n={n} in {wall:6.1f} s: {verdict.summary()}", flush=True)
        if s.refusal_pause is not None:
            refusals = verdict.refusals + system.refusals
            print(f"    runs accepted {len(verdict.spans)}; starts refused as storage full {len(refusals)} "
                  f"({len(verdict.refusals)} of the load, {len(system.refusals)} of clients arriving "
                  f"while full), slowest answer {max(refusals, default=float('nan')):.2f} s; apart from "
                  "every run figure", flush=True)
        if system.full_window is not None:
            full_at, room_at = system.full_window
            while_full = sum(full_at + 1.0 < t < room_at for t in verdict.completions)  # 1 s: news in transit
            print(f"    runs completed while the store was full {while_full}; starts of arriving clients "
                  f"accepted then {system.accepted_full} (room freed by consumed messages)", flush=True)
        for note in system.notes:
            print(f"    {note}", flush=True)
        for struck, back in zip(verdict.faults, sorted(ended), strict=False):
            recovery = verdict.recovery_after(back)
            shown = f"{recovery:5.2f} s" if recovery is not None else "never"
            print(f"    fault at {struck - verdict.started_at:6.1f} s, over after {back - struck:5.2f} s "
                  f"-> next run completed right {shown} later", flush=True)
        if system.ops is not None and system.full_window is not None:  # ready again, unrestarted
            try:
                # the engine ends the condition at a commit accepted after the last refusal: a new run
                after = await client.start_workflow("Chaos", f"disk-full-after-{ULID()}".lower(), {"n": 1})
                await after.result(timeout=READY_AGAIN)
                await after.close()
                await wait_status(f"{system.ops}/readyz", 200, timeout=READY_AGAIN)
                ready = time.monotonic() - system.full_window[1]
                print(f"    /readyz 200 again {ready:.1f} s after the room returned (at most: read once the "
                      "load was over)", flush=True)
            except (AssertionError, TimeoutError, WorkflowError) as exc:
                problem(f"{s.name}: {type(exc).__name__}: {exc}")
        for found in problems(system, verdict, s, n):
            problem(f"{s.name}: {found}")
        print(f"    logs in {work}", flush=True)
    finally:
        await conn.close()
        await system.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="workflows per scenario")
    parser.add_argument("--concurrency", type=int, default=200, help="runs in flight at once")
    parser.add_argument("--scenario", action="append", choices=list(BY_NAME), help="default: all")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds before a run counts as lost")
    args = parser.parse_args()
    for name in args.scenario or [s.name for s in [*SCENARIOS, DISK_FULL]]:
        await scenario(BY_NAME[name], args.n, args.concurrency, args.deadline)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(exit_status())
