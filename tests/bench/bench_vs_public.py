"""Our worker against the public SDK's worker (grctl-sdk-python 0.3.0 in its own Python 3.13
environment), side by side: one engine, one nats-server, both workers running, and alternating rounds
in which the client starts N one-step (then N five-step) workflows served by one worker or the other
(the same workflow code, tests/bench/bench_workflows.py, under several type names). Our worker runs
twice, on the default event loop (uvloop) and on asyncio's own. Prints each round, then
the totals: workflows/s, and the CPU time (user + system) each worker and the engine spent per step.
Failed runs are counted apart and left out of every figure.

    .venv/bin/python tests/bench/bench_vs_public.py [-n 300] [--rounds 3] [--concurrency 100]

The goals it reports on: our worker ≥ 3x the public worker's one-step throughput, ≤ 0.35x its CPU per
step and ≤ 0.6 ms of CPU per step. They are figures, not its exit status: it exits 1 when a run failed
(tests/integration/test_bench_smoke.py runs it at a tiny size, where the figures mean nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psutil
from figures import cpu_seconds, exit_status, problem
from ulid import ULID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.public_sdk import public_env, public_sdk_python  # noqa: E402

from grctl.client.client import Client  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402
from grctl.nats.server import NatsServerProcess  # noqa: E402

KINDS = (("BenchOne", 1), ("BenchFive", 5))
# Ours twice: on the default loop (uvloop) and on asyncio's own, to measure what the loop is worth.
WORKERS = (("ours", ""), ("ours-asyncio", "Aio"), ("public", "Pub"))
PUBLIC_WORKER = ROOT / "tests" / "interop" / "public_bench_worker.py"


@dataclass
class Tally:
    runs: int = 0
    failed: int = 0
    wall: float = 0.0
    worker_cpu: float = 0.0
    engine_cpu: float = 0.0

    def add(self, other: Tally) -> None:
        self.runs += other.runs
        self.failed += other.failed
        self.wall += other.wall
        self.worker_cpu += other.worker_cpu
        self.engine_cpu += other.engine_cpu

    @property
    def rate(self) -> float:
        return (self.runs - self.failed) / self.wall

    def cpu(self, steps: int) -> float:
        """Worker CPU seconds per step."""
        return self.worker_cpu / (max(self.runs - self.failed, 1) * steps)

    def line(self, label: str, steps: int) -> str:
        done = max(self.runs - self.failed, 1)
        return (f"{label:22s} {done / self.wall:7.1f} workflows/s  CPU per step: worker "
                f"{self.worker_cpu / (done * steps) * 1000:5.2f} ms, engine "
                f"{self.engine_cpu / (done * steps) * 1000:5.2f} ms  failed {self.failed}")


async def registered(client: Client, wf_type: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.run_workflow(wf_type, f"warm-{ULID()}", {"n": 0}, timeout=30)
            return
        except Exception:  # the type is not registered yet
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def one_round(client: Client, wf_type: str, runs: int, concurrency: int, worker: psutil.Process,
                    engine: psutil.Process) -> Tally:
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            try:
                if await client.run_workflow(wf_type, f"b-{ULID()}", {"n": i}, timeout=120) != i:
                    failed += 1
            except Exception:
                failed += 1

    w0, e0, t0 = cpu_seconds(worker), cpu_seconds(engine), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return Tally(runs, failed, time.perf_counter() - t0, cpu_seconds(worker) - w0, cpu_seconds(engine) - e0)


async def bench(runs: int, rounds: int, concurrency: int) -> None:
    public_python = public_sdk_python()
    if public_python is None:
        raise SystemExit("no Python >= 3.13 on this machine: the public SDK needs it")
    tmp = Path(tempfile.mkdtemp(prefix="grctl-bench-vs-public-"))
    server = NatsServerProcess(store_dir=tmp / "nats").start()
    env = dict(os.environ, GRCTL_NATS_SERVERS=server.url, PYTHONPATH=str(ROOT))
    procs = {
        "engine": subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", server.url], env=env,
                                   stderr=open(tmp / "engine.log", "wb")),
        "ours": subprocess.Popen([sys.executable, str(HERE / "bench_worker.py")], env=env,
                                 stderr=open(tmp / "ours.log", "wb")),
        "ours-asyncio": subprocess.Popen([sys.executable, str(HERE / "bench_worker.py")],
                                         env=dict(env, BENCH_TYPE_PREFIX="Aio", GRCTL_EVENT_LOOP="asyncio"),
                                         stderr=open(tmp / "ours-asyncio.log", "wb")),
        "public": subprocess.Popen([public_python, str(PUBLIC_WORKER)],
                                   env=public_env(server.url), cwd=tmp, stdout=subprocess.DEVNULL,
                                   stderr=open(tmp / "public.log", "wb")),
    }
    conn = await Connection.connect([server.url])
    client = Client(conn)
    try:
        for _, prefix in WORKERS:
            for wf_type, _ in KINDS:
                await registered(client, prefix + wf_type)
        ps = {name: psutil.Process(p.pid) for name, p in procs.items()}
        print(f"nats-server {server.url}; {runs} runs per round, {concurrency} in flight; logs in {tmp}")
        totals: dict[tuple[str, str], Tally] = defaultdict(Tally)
        for r in range(rounds):
            order = WORKERS[r % len(WORKERS):] + WORKERS[:r % len(WORKERS)]  # each goes first in turn
            for wf_type, steps in KINDS:
                for name, prefix in order:
                    tally = await one_round(client, prefix + wf_type, runs, concurrency, ps[name],
                                            ps["engine"])
                    totals[(name, wf_type)].add(tally)
                    print(f"round {r + 1} " + tally.line(f"{name} {wf_type}", steps), flush=True)
        print("totals")
        for wf_type, steps in KINDS:
            for name, _ in WORKERS:
                print("  " + totals[(name, wf_type)].line(f"{name} {wf_type}", steps))
        for wf_type, steps in KINDS:
            theirs = totals[("public", wf_type)]
            for name in ("ours", "ours-asyncio"):
                ours = totals[(name, wf_type)]
                # a tiny run may see no CPU tick of the public worker's: no ratio then
                cpu_ratio = f"{ours.cpu(steps) / theirs.cpu(steps):.2f}x" if theirs.cpu(steps) else "n/a"
                print(f"{wf_type} {name}: throughput {ours.rate / theirs.rate:.2f}x the public worker's "
                      f"(goal >= 3x), worker CPU per step {cpu_ratio} "
                      f"(goal <= 0.35x), {ours.cpu(steps) * 1000:.2f} ms (goal <= 0.6 ms)")
        for (name, wf_type), tally in totals.items():
            if tally.failed:
                problem(f"{tally.failed} of {tally.runs} {wf_type} runs on {name} failed")
    finally:
        await conn.close()
        for p in procs.values():
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="runs per round and worker")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--concurrency", type=int, default=100, help="workflows in flight at once")
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
    sys.exit(exit_status())
