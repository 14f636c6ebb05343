"""Overload benchmark: N one-step workflows (the step calls one task) at several levels of runs in
flight, from one or more client processes, through one engine process and one worker process on a
file-backed nats-server. Per level it prints workflows/s, latency p50/p99/max, start errors, failed
runs, ghost runs (the client saw the start fail, yet the run exists) and the CPU time per workflow of
nats-server, the engine, the worker and the clients. Figures, not pass/fail.

    .venv/bin/python tests/bench/bench_overload.py [-n 4000] [--levels 200,1000,3000] [--clients 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from figures import cpu_seconds, exit_status, percentile, problem
from ulid import ULID

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
ROOT = HERE.parents[1]

from grctl.client.client import Client  # noqa: E402
from grctl.models.errors import WorkflowError, WorkflowNotFoundError  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402
from grctl.nats.server import NatsServerProcess  # noqa: E402

# --- a client process -------------------------------------------------------------------------------


async def client_main(url: str, n: int, inflight: int, prefix: str, deadline: float) -> None:
    conn = await Connection.connect([url], name="grctl-bench-client")
    client = Client(conn)
    gate = asyncio.Semaphore(inflight)
    latencies: list[float] = []
    start_errors: dict[str, str] = {}
    failed: dict[str, str] = {}
    wrong = 0

    async def one(i: int) -> None:
        nonlocal wrong
        wf_id = f"{prefix}-{i}"
        async with gate:
            t0 = time.perf_counter()
            try:
                handle = await client.start_workflow("BenchTask", wf_id, {"n": i})
            except Exception as exc:
                start_errors[wf_id] = f"{type(exc).__name__}: {exc}"
                return
            try:
                result = await handle.result(timeout=deadline)
            except (WorkflowError, TimeoutError, asyncio.CancelledError) as exc:
                failed[wf_id] = f"{type(exc).__name__}: {exc}"
                return
            finally:
                await handle.close()
            latencies.append(time.perf_counter() - t0)
            wrong += result != i

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    await conn.close()
    me = psutil.Process()
    print(json.dumps({"wall": wall, "latencies": latencies, "start_errors": start_errors,
                      "failed": failed, "wrong": wrong, "cpu": cpu_seconds(me)}), flush=True)


# --- the orchestrator -------------------------------------------------------------------------------


async def wait_registered(client: Client) -> None:
    for _ in range(300):
        try:
            await client.run_workflow("BenchTask", f"warm-{ULID()}", {"n": 0}, timeout=30)
            return
        except Exception:  # no stream yet, or the type is not registered yet
            await asyncio.sleep(0.1)
    raise RuntimeError("BenchTask never registered")


async def ghosts(client: Client, wf_ids: list[str]) -> int:
    found = 0
    for wf_id in wf_ids:
        for _ in range(3):
            try:
                await client.describe(wf_id)
                found += 1
                break
            except WorkflowNotFoundError:
                break
            except Exception:
                await asyncio.sleep(1)
    return found


async def level(url: str, client: Client, procs: dict[str, psutil.Process], n: int, inflight: int,
                clients: int, deadline: float) -> None:
    before = {name: cpu_seconds(p) for name, p in procs.items()}
    prefix = f"ov-{ULID()}".lower()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    children = []
    for c in range(clients):
        share = n // clients + (1 if c < n % clients else 0)
        children.append(subprocess.Popen(
            [sys.executable, str(SCRIPT), "--client", url, "-n", str(share),
             "--inflight", str(max(1, inflight // clients)), "--prefix", f"{prefix}-{c}",
             "--deadline", str(deadline)], env=env, stdout=subprocess.PIPE))
    t0 = time.perf_counter()
    reports = []
    for child in children:
        out, _ = await asyncio.to_thread(child.communicate)
        reports.append(json.loads(out))
    wall = time.perf_counter() - t0
    after = {name: cpu_seconds(p) for name, p in procs.items()}
    latencies = [lat for r in reports for lat in r["latencies"]]
    start_errors = [wf_id for r in reports for wf_id in r["start_errors"]]
    failed = sum(len(r["failed"]) for r in reports)
    wrong = sum(r["wrong"] for r in reports)
    ghost = await ghosts(client, start_errors)
    cpu = {name: (after[name] - before[name]) / n * 1000 for name in procs}
    client_cpu = sum(r["cpu"] for r in reports) / n * 1000
    print(f"in flight {inflight:5d} ({clients} client{'s' if clients > 1 else ''}): "
          f"{len(latencies) / wall:7.1f} workflows/s  p50 {percentile(latencies, 50):6.2f} s  "
          f"p99 {percentile(latencies, 99):6.2f} s  max {max(latencies, default=float('nan')):6.2f} s  "
          f"start errors {len(start_errors)}  failed {failed}  wrong {wrong}  ghosts {ghost}")
    print(f"      cpu ms/workflow: nats-server {cpu['nats-server']:.2f}  engine {cpu['engine']:.2f}  "
          f"worker {cpu['worker']:.2f}  clients {client_cpu:.2f}")
    samples = [e for r in reports for e in list(r["start_errors"].values())[:2]]
    samples += [e for r in reports for e in list(r["failed"].values())[:2]]
    if samples:
        print(f"      e.g. {samples[:3]}")
    if start_errors or failed or wrong or ghost or len(latencies) < n:
        problem(f"in flight {inflight}: {n - len(latencies)} of {n} runs without their right result")
    sys.stdout.flush()


async def orchestrate(n: int, levels: list[int], clients: int, deadline: float, worker_slots: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="grctl-overload-"))
    server = NatsServerProcess(store_dir=tmp / "nats", log_file=tmp / "nats.log").start()
    env = dict(os.environ, GRCTL_NATS_SERVERS=server.url, PYTHONPATH=str(ROOT),
               BENCH_MAX_CONCURRENT=str(worker_slots))
    engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", server.url], env=env,
                              stderr=open(tmp / "engine.log", "wb"))
    worker = subprocess.Popen([sys.executable, str(HERE / "bench_worker.py")], env=env,
                              stderr=open(tmp / "worker.log", "wb"))
    conn = await Connection.connect([server.url], name="grctl-bench-orchestrator")
    client = Client(conn)
    try:
        await wait_registered(client)
        assert server.pid is not None
        procs = {"nats-server": psutil.Process(server.pid), "engine": psutil.Process(engine.pid),
                 "worker": psutil.Process(worker.pid)}
        print(f"{n} one-step workflows per level; worker slots {worker_slots}; logs in {tmp}")
        for inflight in levels:
            await level(server.url, client, procs, n, inflight, clients, deadline)
        print(f"rss engine {procs['engine'].memory_info().rss / 2**20:.0f} MiB, worker "
              f"{procs['worker'].memory_info().rss / 2**20:.0f} MiB, nats-server "
              f"{procs['nats-server'].memory_info().rss / 2**20:.0f} MiB")
    finally:
        await conn.close()
        for p in (worker, engine):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=4000, help="workflows per level")
    parser.add_argument("--levels", default="200,1000,3000", help="runs in flight, comma-separated")
    parser.add_argument("--clients", type=int, default=1, help="client processes sharing each level")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds a run may take")
    parser.add_argument("--worker-slots", type=int, default=200, help="steps the worker runs at once")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--inflight", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="ov", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args.client, args.n, args.inflight, args.prefix, args.deadline))
        return
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    asyncio.run(orchestrate(args.n, levels, args.clients, args.deadline, args.worker_slots))
    sys.exit(exit_status())


if __name__ == "__main__":
    main()
