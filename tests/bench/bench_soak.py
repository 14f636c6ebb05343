"""A soak: a steady load of three-step ``Chaos`` runs (a new run every 1/RATE s, each awaited) for a set
time, through nats-server, an engine, two worker processes and a grctld host (``grctld -c FILE``, a
worker-only host whose generation serves ``Chaos`` too), while every KILL_EVERY seconds a random
component is SIGKILLed and started again: the engine, nats-server (restarted on the same store), a
worker (replaced at once) or grctld (its worker children die with it; started again with the same
file). The components are killed in rounds, each round every component once in a random order, so
that a short run kills each of them too. Reports, per minute, the runs started, completed right,
failed and lost, and latency percentiles of the right ones; the kills per component; then the task
bodies run again after their completion was recorded, incomplete histories, and each process's memory
(grctld and its workers included) over its life with its slope (MiB/min) so that a leak shows. Exits 1
when a run failed, was lost, or a task body ran again after its completion, or when a child of grctld
outlived it.

    .venv/bin/python tests/bench/bench_soak.py [--minutes 30] [--rate 20] [--kill-every 8] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from figures import RssSampler, exit_status, percentile, problem  # noqa: E402
from support.chaos import System, Verdict, find_duplicates  # noqa: E402
from support.wf_chaos import expected  # noqa: E402
from ulid import ULID  # noqa: E402

from grctl.client.client import Client  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402

COMPONENTS = ("engine", "nats-server", "worker", "grctld")


class Soak:
    def __init__(self, system: System, client: Client, rss: RssSampler) -> None:
        self.system = system
        self.client = client
        self.rss = rss
        self.verdict = Verdict(started_at=time.monotonic())
        self.minutes: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.kills: list[tuple[float, str]] = []
        self.round: list[str] = []  # the components still to kill in this round

    def track_processes(self) -> None:
        """Memory series per process (a restarted component is a new process, a new series)."""
        grctld = self.system.grctld
        procs = [("nats-server", self.system.nats.pid), *(("engine", e.pid) for e in self.system.engines),
                 *(("worker", w.pid) for w in self.system.workers),
                 *([("grctld", grctld.pid)] if grctld is not None else []),
                 *(("grctld-worker", pid) for pid in self.system.grctld_workers)]
        for role, pid in procs:
            if pid is not None and f"{role} {pid}" not in self.rss.procs:
                try:
                    self.rss.track(f"{role} {pid}", psutil.Process(pid))
                except psutil.NoSuchProcess:  # killed before it was seen: no series
                    pass

    async def one(self, wf_id: str, n: int, deadline: float) -> None:
        began = time.monotonic()
        minute = self.minutes[int((began - self.verdict.started_at) // 60)]
        minute["started"].append(0)
        try:
            handle = await self.client.start_workflow("Chaos", wf_id, {"n": n})
        except Exception as exc:
            self.verdict.start_errors.append(f"{wf_id}: {type(exc).__name__}: {exc}")
            minute["start errors"].append(0)
            return
        try:
            result = await handle.result(timeout=deadline)
        except TimeoutError as exc:
            (self.verdict.failed if "timed out after" in str(exc) else self.verdict.lost).append(wf_id)
            minute["failed" if "timed out after" in str(exc) else "lost"].append(0)
            return
        except Exception as exc:
            self.verdict.failed.append(f"{wf_id}: {type(exc).__name__}: {exc}")
            minute["failed"].append(0)
            return
        finally:
            await handle.close()
            self.verdict.spans[wf_id] = (began, time.monotonic())
        if result == expected(n):
            self.verdict.ok += 1
            minute["latency"].append(time.monotonic() - began)
        else:
            self.verdict.wrong.append(wf_id)
            minute["failed"].append(0)

    async def kill_one(self, rng: random.Random) -> None:
        if not self.round:
            self.round = rng.sample(COMPONENTS, len(COMPONENTS))
        what = self.round.pop()
        self.kills.append((time.monotonic() - self.verdict.started_at, what))
        if what == "engine":
            self.system.kill_engine()
            await asyncio.sleep(1.0)
            self.system.start_engine()
        elif what == "nats-server":
            await self.system.restart_nats(1.0, 9)
        elif what == "grctld":
            for pid in await self.system.restart_grctld():
                problem(f"a worker child of grctld (pid {pid}) outlived its SIGKILL")
        else:
            await self.system.replace_worker(rng.randrange(len(self.system.workers)))
        self.track_processes()

    async def run(self, seconds: float, rate: float, kill_every: float, deadline: float, seed: int) -> None:
        rng = random.Random(seed)
        prefix = f"soak-{ULID()}".lower()
        runs: list[asyncio.Task[None]] = []
        end = time.monotonic() + seconds
        next_kill = time.monotonic() + kill_every
        next_sample = time.monotonic()
        i = 0
        killing: asyncio.Task[None] | None = None
        while time.monotonic() < end:
            runs.append(asyncio.create_task(self.one(f"{prefix}-{i}", i, deadline)))
            i += 1
            now = time.monotonic()
            if now >= next_kill and (killing is None or killing.done()):
                killing = asyncio.create_task(self.kill_one(rng))
                next_kill = now + kill_every
            if now >= next_sample:
                self.rss.sample()
                next_sample = now + 5.0
            await asyncio.sleep(1.0 / rate)
        if killing is not None:
            await killing
        await asyncio.gather(*runs)
        self.rss.sample()
        self.verdict.ended_at = time.monotonic()

    def report(self) -> None:
        print("minute  started  right  failed  lost  start-errors  latency p50 / p99 / max (s)")
        for m in sorted(self.minutes):
            row = self.minutes[m]
            lat = row["latency"]
            worst = max(lat, default=float("nan"))
            print(f"{m:6d}  {len(row['started']):7d}  {len(lat):5d}  {len(row['failed']):6d}  "
                  f"{len(row['lost']):4d}  {len(row['start errors']):12d}  "
                  f"{percentile(lat, 50):.2f} / {percentile(lat, 99):.2f} / {worst:.2f}")
        print("kills: " + ", ".join(f"{what} at {at:.0f}s" for at, what in self.kills))
        counts = {what: sum(kill == what for _, kill in self.kills) for what in COMPONENTS}
        print(f"kills per component: {', '.join(f'{what} {n}' for what, n in counts.items())} "
              f"({len(self.kills)} in all)")
        print(self.verdict.summary())
        for line in self.rss.lines():
            print(f"  {line}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    parser.add_argument("--rate", type=float, default=20.0, help="runs started per second")
    parser.add_argument("--kill-every", type=float, default=8.0, help="seconds between kills")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds before a run counts as lost")
    parser.add_argument("--seed", type=int, default=1, help="which components the kills pick")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grctl-soak-"))
    system = System(work, workers=2, grctld=True)
    await system.start()
    conn = await Connection.connect([system.url], name="grctl-soak-client")
    try:
        soak = Soak(system, Client(conn), RssSampler({}))
        soak.track_processes()
        print(f"soak: {args.minutes:g} min at {args.rate:g} runs/s, a kill every {args.kill_every:g} s; "
              f"logs in {work}", flush=True)
        await soak.run(args.minutes * 60, args.rate, args.kill_every, args.deadline, args.seed)
        await find_duplicates(soak.client, work, soak.verdict)
        soak.report()
        if not soak.verdict.clean:
            problem(f"{soak.verdict.summary()}; {soak.verdict.details()}")
    finally:
        await conn.close()
        await system.stop()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(exit_status())
