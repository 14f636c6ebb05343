"""A backlog drained: N one-step workflows started while no worker serves their type (they queue in the
stream), then worker processes start. Prints how fast the starts went in, how fast the backlog drained
(overall and per tenth, so a drain that slows down as it goes shows), and the memory of the engine and
the workers over the drain (maximum and slope). Exits 1 when a run did not complete in time.

    .venv/bin/python tests/bench/bench_drain.py [-n 100000] [--workers 2] [--deadline 1800]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from figures import RssSampler, exit_status, problem  # noqa: E402
from support.scrape import aget, value  # noqa: E402

from grctl.client.client import Client  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402
from grctl.nats.server import NatsServerProcess, free_port  # noqa: E402

WORKFLOW = "BenchOne"


def start_worker(env: dict[str, str], logs: Path, i: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(HERE / "bench_worker.py")], env=env,
                            stderr=open(logs / f"worker{i}.log", "wb"))


async def ended(ops: str) -> tuple[float, float]:
    """(completed, ended otherwise) runs, from the engine's metrics."""
    _, text = await aget(f"{ops}/metrics")
    done = value(text, "grctl_engine_runs_ended_total", status="completed")
    return done, value(text, "grctl_engine_runs_ended_total") - done


async def bench(n: int, workers: int, deadline: float, concurrency: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="grctl-bench-drain-"))
    server = NatsServerProcess(store_dir=tmp / "nats").start()
    env = dict(os.environ, GRCTL_NATS_SERVERS=server.url, PYTHONPATH=str(ROOT))
    listen = f"127.0.0.1:{free_port()}"
    ops = f"http://{listen}"
    engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "--http", listen], env=env,
                              stderr=open(tmp / "engine.log", "wb"))
    procs: list[subprocess.Popen[bytes]] = [engine]
    conn = await Connection.connect([server.url])
    client = Client(conn)
    try:
        registering = start_worker(env, tmp, 0)  # registers the type, then leaves: the runs queue
        procs.append(registering)
        while True:
            try:
                await client.start_workflow(WORKFLOW, "drain-probe", {"n": 0})
                break
            except Exception:
                await asyncio.sleep(0.2)
        while (await ended(ops))[0] < 1:  # noqa: ASYNC110 (polling another process's metrics)
            await asyncio.sleep(0.2)
        registering.terminate()
        registering.wait(30)

        gate = asyncio.Semaphore(concurrency)

        async def start(i: int) -> None:
            async with gate:
                await client.start_workflow(WORKFLOW, f"drain-{i}", {"n": i})

        t0 = time.monotonic()
        await asyncio.gather(*(start(i) for i in range(n)))
        took = time.monotonic() - t0
        print(f"{n} runs started with no worker in {took:.1f} s ({n / took:.0f}/s); logs in {tmp}",
              flush=True)

        rss = RssSampler({"engine": psutil.Process(engine.pid)})
        t0 = time.monotonic()
        for i in range(workers):
            proc = start_worker(env, tmp, i + 1)
            procs.append(proc)
            rss.track(f"worker{i + 1}", psutil.Process(proc.pid))
        timeline: list[tuple[float, float]] = [(0.0, 0.0)]  # (seconds, runs completed)
        done = failed = 0.0
        while time.monotonic() - t0 < deadline:
            rss.sample()
            done, failed = await ended(ops)
            done -= 1  # the probe
            timeline.append((time.monotonic() - t0, done))
            if done + failed >= n:
                break
            await asyncio.sleep(0.5)
        wall = time.monotonic() - t0
        print(f"drained {done:.0f} of {n} with {workers} worker process(es) in {wall:.1f} s: "
              f"{done / wall:.0f} runs/s; failed {failed:.0f}, not done {n - done - failed:.0f}", flush=True)
        print("  runs/s per tenth of the drain: " + " ".join(f"{r:.0f}" for r in tenth_rates(timeline)))
        for line in rss.lines():
            print(f"  {line}")
        if done < n or failed:
            problem(f"{n - done:.0f} runs did not complete ({failed:.0f} failed)")
    finally:
        await conn.close()
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        server.cleanup()


def tenth_rates(timeline: list[tuple[float, float]]) -> list[float]:
    """Runs completed per second in each tenth of the drain's time: flat when it drains at full speed."""
    end = timeline[-1][0]
    rates = []
    for k in range(10):
        a, b = end * k / 10, end * (k + 1) / 10
        before = max((d for t, d in timeline if t <= a), default=0.0)
        upto = max((d for t, d in timeline if t <= b), default=0.0)
        rates.append((upto - before) / (b - a) if b > a else 0.0)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="runs queued before any worker starts")
    parser.add_argument("--workers", type=int, default=2, help="worker processes started on the backlog")
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds the drain may take")
    parser.add_argument("--concurrency", type=int, default=256, help="starts in flight at once")
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.workers, args.deadline, args.concurrency))
    sys.exit(exit_status())


if __name__ == "__main__":
    main()
