"""Faults under load: N three-step ``Chaos`` workflows (one ``@task`` per step) through an engine process
and worker processes on a file-backed nats-server, while one component is killed or restarted.
Prints, per scenario, the runs completed / failed / lost, task bodies run again after their completion
was recorded, and the time from each fault to the next completed run. Figures, not pass/fail.

    .venv/bin/python tests/bench/bench_chaos.py [-n 1000] [--concurrency 200] [--scenario NAME ...]

Scenarios: engine-kill (SIGKILL at 30 % and 60 % of the load, restarted after 1 s), nats-term and
nats-kill (nats-server stopped at 30 % by SIGTERM or SIGKILL, restarted 3 s later on the same port and
store), worker-kill (two workers, one SIGKILLed every --worker-period seconds and replaced at once).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.chaos import System, Verdict, find_duplicates, run_load  # noqa: E402

from grctl.client.client import Client  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402

SCENARIOS = ("engine-kill", "nats-term", "nats-kill", "worker-kill")


async def scenario(name: str, n: int, concurrency: int, worker_period: float, deadline: float) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"grctl-chaos-{name}-"))
    system = System(work, workers=2 if name == "worker-kill" else 1)
    await system.start()
    conn = await Connection.connect([system.url], name="grctl-chaos-client")
    client = Client(conn)
    faults: list[tuple[str, float, list[float]]] = []  # what, when, [when the component was back]
    triggers = {"engine-kill": (0.3, 0.6), "nats-term": (0.3,), "nats-kill": (0.3,)}.get(name, ())
    pending = list(triggers)
    fault_tasks: list[asyncio.Task[None]] = []

    async def engine_kill() -> None:
        back: list[float] = []
        faults.append(("engine SIGKILL", time.monotonic(), back))
        system.kill_engine()
        await asyncio.sleep(1.0)
        system.start_engine()
        back.append(time.monotonic())

    async def nats_restart(sig: int) -> None:
        back: list[float] = []
        faults.append((f"nats-server {signal.Signals(sig).name}", time.monotonic(), back))
        await system.restart_nats(3.0, sig)
        back.append(time.monotonic())

    async def progress(done: int) -> None:
        while pending and done >= pending[0] * n:
            pending.pop(0)
            if name == "engine-kill":
                fault_tasks.append(asyncio.create_task(engine_kill()))
            elif name == "nats-term":
                fault_tasks.append(asyncio.create_task(nats_restart(signal.SIGTERM)))
            elif name == "nats-kill":
                fault_tasks.append(asyncio.create_task(nats_restart(signal.SIGKILL)))

    async def worker_killer() -> None:
        index = 0
        while True:
            await asyncio.sleep(worker_period)
            back: list[float] = []
            faults.append(("worker SIGKILL", time.monotonic(), back))
            await system.replace_worker(index % len(system.workers))
            back.append(time.monotonic())
            index += 1

    killer = asyncio.create_task(worker_killer()) if name == "worker-kill" else None
    try:
        verdict: Verdict = await run_load(client, n, concurrency, deadline, progress)
        if killer is not None:
            killer.cancel()
        await asyncio.gather(*fault_tasks, return_exceptions=True)
        await find_duplicates(client, work, verdict)
        wall = verdict.ended_at - verdict.started_at
        print(f"{name:12s} n={n} in {wall:6.1f} s: {verdict.summary()}")
        for what, when, back in faults:
            restarted = back[0] if back else when
            recovery = verdict.recovery_after(restarted)
            shown = f"{recovery:5.2f} s" if recovery is not None else "never"
            print(f"    {what:22s} at {when - verdict.started_at:6.1f} s, back after "
                  f"{restarted - when:5.2f} s -> next run completed {shown} later")
        if not verdict.clean:
            print(f"    {verdict.details()}")
        print(f"    logs in {work}")
    finally:
        if killer is not None:
            killer.cancel()
        await conn.close()
        await system.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="workflows per scenario")
    parser.add_argument("--concurrency", type=int, default=200, help="runs in flight at once")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all")
    parser.add_argument("--worker-period", type=float, default=6.0, help="seconds between worker kills")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds before a run counts as lost")
    args = parser.parse_args()
    for name in args.scenario or SCENARIOS:
        await scenario(name, args.n, args.concurrency, args.worker_period, args.deadline)


if __name__ == "__main__":
    asyncio.run(main())
