"""What an idle console costs the engine: five-step workflows through an engine process and a worker
process on a real nats-server, in alternating rounds with the console on and off, in the order
off-on, on-off, ... (fresh engine and worker per round, same server). Both modes serve /metrics on
the engine's listener, as ``grctl engine --http`` did before the console; nobody opens the console.
Prints steps/s, the engine's CPU per step and its resident memory after each round, and the mean of
each mode. Figures, not pass/fail.

    .venv/bin/python tests/bench/bench_console_idle.py [-n 1000] [--concurrency 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from bench_throughput import cpu_seconds, run_batch, wait_registered

from grctl.client.client import Client
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


async def one_round(server: NatsServerProcess, tmp: Path, console: bool, n: int,
                    concurrency: int) -> tuple[float, float, float]:
    """(steps/s, engine CPU ms per step, engine RSS MiB at the end) of one round."""
    env = dict(os.environ, GRCTL_NATS_SERVERS=server.url, PYTHONPATH=str(ROOT))
    config = tmp / f"engine-{'on' if console else 'off'}.yaml"
    config.write_text(f"nats:\n  servers: ['{server.url}']\nengine:\n  http:\n"
                      f"    listen: 127.0.0.1:{free_port()}\n    console:\n"
                      f"      enabled: {'true' if console else 'false'}\n")
    engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-c", str(config)], env=env,
                              stderr=open(tmp / "engine.log", "ab"))
    worker = subprocess.Popen([sys.executable, str(HERE / "bench_worker.py")], env=env,
                              stderr=open(tmp / "worker.log", "ab"))
    conn = await Connection.connect([server.url])
    client = Client(conn)
    try:
        await wait_registered(client, "BenchFive")
        engine_ps = psutil.Process(engine.pid)
        e0 = cpu_seconds(engine_ps)
        t0 = time.perf_counter()
        await run_batch(client, "BenchFive", n, concurrency)
        wall = time.perf_counter() - t0
        e1 = cpu_seconds(engine_ps)
        steps = 5 * n
        return steps / wall, (e1 - e0) / steps * 1000, engine_ps.memory_info().rss / 2**20
    finally:
        await conn.close()
        for p in (worker, engine):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


async def bench(n: int, concurrency: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="grctl-bench-console-idle-"))
    server = NatsServerProcess(store_dir=tmp / "nats").start()
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    try:
        print(f"nats-server {server.url}, n={n} five-step workflows per round, concurrency={concurrency}")
        for i in range(rounds):
            for on in ((False, True) if i % 2 == 0 else (True, False)):  # neither mode always goes first
                figures = await one_round(server, tmp, on, n, concurrency)
                results[on].append(figures)
                print(f"console {'on ' if on else 'off'}  {figures[0]:8.1f} steps/s  engine cpu/step "
                      f"{figures[1]:.3f} ms  rss {figures[2]:.1f} MiB", flush=True)
        means = {on: [statistics.mean(f[i] for f in results[on]) for i in range(3)] for on in results}
        off, on = means[False], means[True]
        print(f"mean: off {off[0]:.1f} steps/s, on {on[0]:.1f} steps/s ({(on[0] / off[0] - 1) * 100:+.1f}%); "
              f"engine cpu/step {off[1]:.3f} → {on[1]:.3f} ms, rss {off[2]:.1f} → {on[2]:.1f} MiB")
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="five-step workflows per round")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
