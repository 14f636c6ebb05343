"""Throughput on one node and on a three-node cluster, and the stall when the stream's leader dies.

In one run, side by side: three-step workflows (one task per step, tests/support/wf_cluster.py) through
one engine and one worker process on
  - a single nats-server, stream at 1 replica (R1);
  - a three-node cluster on loopback, stream at 1 replica;
  - a three-node cluster, stream at 3 replicas (R3);
then, on a fresh R3 cluster, the same load with the stream's leader SIGKILLed once 30 % of the runs
completed: the longest time without a completed run after the kill, and what did not complete.
Every process shares this machine, so the figures compare configurations rather than predict a real
deployment (where each node has its own disk and cores).

    .venv/bin/python tests/bench/bench_cluster.py [-n 600] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import Deployment, Figures, run_load
from figures import exit_status
from support.cluster import NatsCluster
from support.cluster_load import longest_gap, summary

from grctl.nats import subjects
from grctl.nats.server import NatsServerProcess


async def measure(urls: list[str], logs: Path, replicas: int, label: str, runs: int,
                  concurrency: int) -> Figures:
    deployment = Deployment(urls, logs, replicas=replicas).start()
    try:
        figures, _ = await run_load(urls, label, runs, concurrency)
        return figures
    finally:
        deployment.stop()


async def leader_kill(root: Path, runs: int, concurrency: int) -> str:
    cluster = NatsCluster(3, root=root / "kill").start()
    deployment = Deployment(cluster.urls, root / "kill-logs", replicas=3).start()
    try:
        cluster.wait_stream_current(subjects.STREAM)
        leader = cluster.stream_leader(subjects.STREAM)
        killed: list[float] = []

        def at_30_percent(done: int) -> None:
            if not killed and done >= runs * 3 // 10:
                killed.append(time.monotonic())
                cluster.kill(leader)

        progress: Callable[[int], None] = at_30_percent
        figures, outcomes = await run_load(cluster.urls, "R3 cluster, leader killed", runs, concurrency,
                                           on_progress=progress, result_timeout=30.0)
        stall = longest_gap(outcomes, killed[0]) if killed else float("nan")
        new_leader = cluster.stream_leader(subjects.STREAM).name
        errors = sorted({(o.error or f"wrong result {o.result}")[:160] for o in outcomes if not o.ok})
        return "\n  ".join([figures.line(), f"leader {leader.name} killed at 30 %, new leader {new_leader}; "
                            f"longest time without a completed run after the kill: {stall:.2f} s",
                            summary(outcomes), *errors[:8]])
    finally:
        deployment.stop()
        cluster.cleanup()


async def bench(runs: int, concurrency: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="grctl-bench-cluster-"))
    print(f"{runs} three-step workflows per line, {concurrency} in flight; one engine, one worker process",
          flush=True)
    try:
        single = NatsServerProcess(store_dir=root / "single").start()
        try:
            print((await measure([single.url], root / "single-logs", 1, "R1, single node", runs,
                                 concurrency)).line(), flush=True)
        finally:
            single.cleanup()
        for replicas in (1, 3):
            cluster = NatsCluster(3, root=root / f"r{replicas}").start()
            try:
                figures = await measure(cluster.urls, root / f"r{replicas}-logs", replicas,
                                        f"R{replicas}, three-node cluster", runs, concurrency)
                print(figures.line(), flush=True)
            finally:
                cluster.cleanup()
        print(await leader_kill(root, runs, concurrency), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=600, help="workflows per configuration")
    parser.add_argument("--concurrency", type=int, default=100, help="workflows in flight at once")
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.concurrency))
    sys.exit(exit_status())


if __name__ == "__main__":
    main()
