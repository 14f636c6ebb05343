"""How late schedule ticks fire: N schedules ``every: 1s`` on one engine process, one worker process and
a file-backed nats-server, first alone, then while a client keeps a load of three-step workflows in
flight. A tick's lateness is its run's creation time (set by the engine) minus the tick's time; the
engine's CPU time per tick is measured for the idle phase. Figures, not pass/fail.

    .venv/bin/python tests/bench/bench_schedules.py [--schedules 20] [--seconds 20] [--load 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from benchkit import Deployment, run_load
from figures import cpu_seconds, percentile
from support.sdk import wait_for

from grctl.client.client import Client
from grctl.client.schedules import ScheduleCommands
from grctl.models.errors import WorkflowNotFoundError
from grctl.models.schedule import Overlap, ScheduleSpec
from grctl.models.schedule_clock import tick_wf_id, ticks_between
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess

PREFIX = "bench-tick"


def specs(count: int) -> dict[str, ScheduleSpec]:
    return {f"{PREFIX}-{i}": ScheduleSpec(workflow="Triple", input={"n": i}, every=1.0,
                                          overlap=Overlap.allow_all) for i in range(count)}


async def lateness(client: Client, count: int, since: datetime, until: datetime) -> list[float]:
    """Seconds from each tick in [since, until) of the ``count`` schedules to its run's creation (a
    tick with no run is left out)."""
    found = []
    for i in range(count):
        spec = specs(count)[f"{PREFIX}-{i}"]
        for tick in ticks_between(spec, since, until - timedelta(microseconds=1), 100_000):
            try:
                run = await client.describe(tick_wf_id(f"{PREFIX}-{i}", tick))
            except WorkflowNotFoundError:
                continue
            if run.created_at is not None:
                found.append((run.created_at - tick).total_seconds())
    return found


def line(label: str, late: list[float], expected: int) -> str:
    ms = [x * 1000 for x in late] or [float("nan")]
    return (f"{label:28s} ticks {len(late):5d}/{expected:<5d} lateness p50 {statistics.median(ms):7.1f} ms  "
            f"p99 {percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-schedules-") as tmp:
        server = NatsServerProcess(store_dir=Path(tmp) / "js")
        server.start()
        deployment = Deployment([server.url], Path(tmp) / "logs").start()
        conn = await Connection.connect([server.url], name="bench-schedules")
        try:
            client = Client(conn)
            engine = psutil.Process(deployment.engines[0].pid)
            await ScheduleCommands(conn, "c:bench").declare("bench", specs(args.schedules))

            async def all_armed() -> bool:
                return all(v.state.fired for v in await client.list_schedules())

            await wait_for(all_armed, timeout=60, interval=0.5)
            cpu0, since = cpu_seconds(engine), datetime.now(UTC).replace(microsecond=0)
            await asyncio.sleep(args.seconds)
            until, cpu = datetime.now(UTC).replace(microsecond=0), cpu_seconds(engine) - cpu0
            await asyncio.sleep(1.5)
            idle = await lateness(client, args.schedules, since, until)
            print(line("idle", idle, args.schedules * args.seconds))
            print(f"{'':28s} engine CPU {cpu / max(1, len(idle)) * 1000:.2f} ms per tick (firing it and "
                  f"running its three-step run)")

            since = datetime.now(UTC).replace(microsecond=0)
            started = time.monotonic()
            load = asyncio.create_task(run_load([server.url], "load", args.load_runs, args.load))
            await asyncio.sleep(args.seconds)
            until = datetime.now(UTC).replace(microsecond=0)
            figures, _ = await load
            await asyncio.sleep(1.5)
            loaded = await lateness(client, args.schedules, since, until)
            print(line(f"under load ({args.load} in flight)", loaded,
                       args.schedules * int((until - since).total_seconds())))
            print(f"{'':28s} {figures.line()} over {time.monotonic() - started:.0f}s")
            await ScheduleCommands(conn, "c:bench").declare("bench", {})
        finally:
            await conn.close()
            deployment.stop()
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--load", type=int, default=200, help="workflows in flight during the loaded phase")
    parser.add_argument("--load-runs", type=int, default=4000, help="workflows the load runs in all")
    asyncio.run(main(parser.parse_args()))
