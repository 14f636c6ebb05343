"""Throughput benchmark: N one-step and N five-step workflows through one engine process and one worker
process on a real nats-server. Prints steps/s, workflows/s, latency percentiles and CPU seconds per
step of the engine and the worker. Figures, not pass/fail.

    .venv/bin/python tests/bench/bench_throughput.py [-n 1000] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from figures import cpu_seconds, percentile
from ulid import ULID

from grctl.client.client import Client
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]




async def wait_registered(client: Client, wf_type: str) -> None:
    for _ in range(200):
        try:
            await client.run_workflow(wf_type, f"warm-{ULID()}", {"n": 0})
            return
        except Exception:  # no stream yet, or the type is not registered yet
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{wf_type} never registered")


async def run_batch(client: Client, wf_type: str, n: int, concurrency: int) -> list[float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            result = await client.run_workflow(wf_type, f"b-{ULID()}", {"n": i})
            latencies.append(time.perf_counter() - t0)
            assert result == i, (result, i)

    await asyncio.gather(*(one(i) for i in range(n)))
    return latencies


async def bench(n: int, concurrency: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="grctl-bench-"))
    server = NatsServerProcess(store_dir=tmp / "nats").start()
    env = dict(os.environ, GRCTL_NATS_SERVERS=server.url, PYTHONPATH=str(ROOT))
    engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", server.url], env=env,
                              stderr=open(tmp / "engine.log", "wb"))
    worker = subprocess.Popen([sys.executable, str(HERE / "bench_worker.py")], env=env,
                              stderr=open(tmp / "worker.log", "wb"))
    conn = await Connection.connect([server.url])
    client = Client(conn)
    try:
        await wait_registered(client, "BenchOne")
        await wait_registered(client, "BenchFive")
        engine_ps, worker_ps = psutil.Process(engine.pid), psutil.Process(worker.pid)
        print(f"nats-server {server.url}, n={n}, client concurrency={concurrency}")
        for wf_type, steps in (("BenchOne", 1), ("BenchFive", 5)):
            e0, w0 = cpu_seconds(engine_ps), cpu_seconds(worker_ps)
            t0 = time.perf_counter()
            lat = await run_batch(client, wf_type, n, concurrency)
            wall = time.perf_counter() - t0
            e1, w1 = cpu_seconds(engine_ps), cpu_seconds(worker_ps)
            total_steps = n * steps
            print(
                f"{wf_type:9s} {n / wall:8.1f} workflows/s {total_steps / wall:8.1f} steps/s  "
                f"latency p50 {statistics.median(lat) * 1000:7.1f} ms "
                f"p99 {percentile(lat, 99) * 1000:7.1f} ms  "
                f"cpu/step engine {(e1 - e0) / total_steps * 1000:.2f} ms worker "
                f"{(w1 - w0) / total_steps * 1000:.2f} ms"
            )
        print(f"rss engine {engine_ps.memory_info().rss / 2**20:.0f} MiB, "
              f"worker {worker_ps.memory_info().rss / 2**20:.0f} MiB")
    finally:
        await conn.close()
        for p in (worker, engine):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=1000, help="workflows of each kind")
    parser.add_argument("--concurrency", type=int, default=200, help="workflows in flight at once")
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.concurrency))


if __name__ == "__main__":
    main()
