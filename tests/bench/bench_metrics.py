"""The cost of metrics: five-step workflows through an engine process and a worker process on a real
nats-server, with metrics off and on in alternating rounds of the same run (fresh engine and worker
per round, same server). "On" is what grctld and ``grctl engine --http`` do: the worker counts into a
multiprocess directory, the engine in memory, and both are scraped once a second during the round.
Prints steps/s and CPU per step for each round and the mean of each mode, and first what the hooks
of one step cost in a worker process counting as under grctld (a step's start and end, a task, one
fetch) and in an engine process (a directive, a commit, an API request). Figures, not pass/fail.

    .venv/bin/python tests/bench/bench_metrics.py [-n 1000] [--concurrency 200] [--rounds 2]
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
import urllib.request
from pathlib import Path

import psutil
from bench_throughput import cpu_seconds, run_batch, wait_registered
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from grctl.client.client import Client
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


async def scrape_every_second(engine_url: str, directory: str, stop: asyncio.Event) -> int:
    """Scrape as Prometheus would: the engine's /metrics and the worker's directory. Scrapes done."""
    done = 0
    while not stop.is_set():
        await asyncio.to_thread(lambda: urllib.request.urlopen(engine_url, timeout=5).read())
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        await asyncio.to_thread(generate_latest, registry)
        done += 1
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass
    return done


async def one_round(server: NatsServerProcess, tmp: Path, metrics_on: bool, n: int,
                    concurrency: int) -> tuple[float, float, float]:
    """(steps/s, engine CPU ms per step, worker CPU ms per step) of one round."""
    env = dict(os.environ, GRCTL_NATS_SERVERS=server.url, PYTHONPATH=str(ROOT))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    engine_args = [sys.executable, "-m", "grctl", "engine", "-s", server.url]
    directory = tempfile.mkdtemp(prefix="metrics-", dir=tmp)
    port = free_port()
    worker_env = dict(env)
    if metrics_on:
        engine_args += ["--http", f"127.0.0.1:{port}"]
        worker_env["PROMETHEUS_MULTIPROC_DIR"] = directory
    engine = subprocess.Popen(engine_args, env=env, stderr=open(tmp / "engine.log", "ab"))
    worker = subprocess.Popen([sys.executable, str(HERE / "bench_worker.py")], env=worker_env,
                              stderr=open(tmp / "worker.log", "ab"))
    conn = await Connection.connect([server.url])
    client = Client(conn)
    stop = asyncio.Event()
    scraper = None
    try:
        await wait_registered(client, "BenchFive")
        engine_ps, worker_ps = psutil.Process(engine.pid), psutil.Process(worker.pid)
        if metrics_on:
            scraper = asyncio.ensure_future(scrape_every_second(f"http://127.0.0.1:{port}/metrics",
                                                                directory, stop))
        e0, w0 = cpu_seconds(engine_ps), cpu_seconds(worker_ps)
        t0 = time.perf_counter()
        await run_batch(client, "BenchFive", n, concurrency)
        wall = time.perf_counter() - t0
        e1, w1 = cpu_seconds(engine_ps), cpu_seconds(worker_ps)
        steps = 5 * n
        return steps / wall, (e1 - e0) / steps * 1000, (w1 - w0) / steps * 1000
    finally:
        stop.set()
        if scraper is not None:
            await scraper
        await conn.close()
        for p in (worker, engine):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def hook_cost(calls: int = 20000) -> None:
    """Run in a child process: microseconds per step of the worker's and the engine's hooks."""
    from grctl.models.command import APIResponse, Command, CommandKind, DescribeCmd, encode_command
    from grctl.models.common import utcnow
    from grctl.ops import metrics

    metrics.enable()
    request = encode_command(Command(id="c", kind=CommandKind.run_describe, timestamp=utcnow(),
                                     msg=DescribeCmd(wf_id="x"), sender_id="c:bench"))
    t0 = time.perf_counter()
    for _ in range(calls):
        metrics.step_started("Bench")
        metrics.task_attempt("Bench", "ok", final=True)
        metrics.fetched("grctl_worker_Bench", [])
        metrics.step_finished("Bench", "ok", 0.003)
    worker = (time.perf_counter() - t0) / calls * 1e6
    t0 = time.perf_counter()
    for _ in range(calls):
        metrics.directive_applied("step", "Bench", True)
        metrics.batch_committed(12, 0.004)
        metrics.api_answered(request, APIResponse(success=True), 0.002)
    engine = (time.perf_counter() - t0) / calls * 1e6
    mode = "multiprocess files" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "memory"
    print(f"hooks, counting into {mode}: worker {worker:.1f} µs per step, engine {engine:.1f} µs per "
          "directive with its commit and an API request")


async def bench(n: int, concurrency: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="grctl-bench-metrics-"))
    for env in ({"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="hooks-", dir=tmp)}, {}):
        subprocess.run([sys.executable, __file__, "--hooks"], env=dict(os.environ, **env), check=True)
    server = NatsServerProcess(store_dir=tmp / "nats").start()
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    try:
        print(f"nats-server {server.url}, n={n} five-step workflows per round, concurrency={concurrency}")
        for _ in range(rounds):
            for on in (False, True):
                figures = await one_round(server, tmp, on, n, concurrency)
                results[on].append(figures)
                print(f"metrics {'on ' if on else 'off'}  {figures[0]:8.1f} steps/s  cpu/step engine "
                      f"{figures[1]:.3f} ms worker {figures[2]:.3f} ms", flush=True)
        means = {on: [statistics.mean(f[i] for f in results[on]) for i in range(3)] for on in results}
        off, on = means[False], means[True]
        print(f"mean: off {off[0]:.1f} steps/s, on {on[0]:.1f} steps/s ({(on[0] / off[0] - 1) * 100:+.1f}%); "
              f"cpu/step engine {off[1]:.3f} → {on[1]:.3f} ms, worker {off[2]:.3f} → {on[2]:.3f} ms")
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="five-step workflows per round")
    parser.add_argument("--concurrency", type=int, default=200, help="workflows in flight at once")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each mode, alternating")
    parser.add_argument("--hooks", action="store_true", help=argparse.SUPPRESS)  # the child of hook_cost
    args = parser.parse_args()
    if args.hooks:
        hook_cost()
        return
    asyncio.run(bench(args.n, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
