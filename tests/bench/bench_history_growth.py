"""History growth: does the cost of a start or a describe grow with the number of finished runs kept?

For each size (0, 10k, 100k finished runs stored; the records of a finished run are written straight
into the stream: run info, latest-run pointer, history, result), an engine process and a worker process
serve one-step workflows, and a client measures, one request at a time, the latency of starting a run
(start → reply) and of describing a stored one, with the nats-server CPU per request. Beside it, the
same lookups as the earlier engine did them (a wildcard last-by-subject read over every run-info
record) to show what the exact reads save. A last phase runs workflows on an engine whose retention
is 2 s, so finished runs are removed while it runs. Figures, not pass/fail.

    .venv/bin/python tests/bench/bench_history_growth.py [--sizes 0,10000,100000] [-n 500]
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

import msgspec
import psutil
from figures import cpu_seconds, percentile
from ulid import ULID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

from grctl.client.client import Client  # noqa: E402
from grctl.engine.migrate import LATEST_POINTERS, LAYOUT  # noqa: E402
from grctl.models.common import RunInfo, RunStatus, utcnow  # noqa: E402
from grctl.models.history import HistoryEvent, HistoryKind, RunCompleted, encode_history  # noqa: E402
from grctl.models.records import LatestRun  # noqa: E402
from grctl.nats import direct, jetstream, subjects  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402
from grctl.nats.server import NatsServerProcess  # noqa: E402


async def fill(conn: Connection, count: int, start: int) -> None:
    """Write ``count`` finished runs' records (type BenchTask) straight into the stream."""
    js = conn.js
    pending: list[asyncio.Future[object]] = []
    now = utcnow()
    for i in range(start, start + count):
        wf_id, run_id = f"old-{i}", str(ULID())
        info = RunInfo(id=run_id, wf_id=wf_id, wf_type="BenchTask", status=RunStatus.completed,
                       created_at=now, started_at=now, completed_at=now)
        event = HistoryEvent(wf_id=wf_id, run_id=run_id, worker_id="", timestamp=now,
                             kind=HistoryKind.run_completed, msg=RunCompleted(result=i, duration_ms=1))
        for subject, data in (
                (subjects.run_info("BenchTask", wf_id, run_id), msgspec.msgpack.encode(info)),
                (subjects.latest(wf_id), msgspec.msgpack.encode(LatestRun(run_id, "BenchTask"))),
                (subjects.history(wf_id, run_id), encode_history(event)),
                (subjects.run_output(wf_id, run_id), msgspec.msgpack.encode(i))):
            pending.append(await js.publish_async(subject, data))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def timed(label: str, n: int, op, server: psutil.Process) -> str:  # type: ignore[no-untyped-def]
    lat: list[float] = []
    c0 = cpu_seconds(server)
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        lat.append(time.perf_counter() - t0)
    cpu = (cpu_seconds(server) - c0) / n * 1e6
    p50, p99 = statistics.median(lat) * 1000, percentile(lat, 99) * 1000
    return f"{label:26s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  server cpu {cpu:6.0f} µs/op"


async def measure(client: Client, conn: Connection, server: psutil.Process, n: int, stored: int) -> None:
    nc = conn.nc
    prefix = f"new-{ULID()}".lower()

    async def start(i: int) -> None:
        handle = await client.start_workflow("BenchTask", f"{prefix}-{i}", {"n": i})
        await handle.close()

    async def describe(i: int) -> None:
        await client.describe(some_id(i))

    def some_id(i: int) -> str:
        return f"old-{i % stored}" if stored else f"{prefix}-{i}"

    async def wildcard(i: int) -> None:  # how the engine found a workflow id's latest run before
        await direct.get_last(nc, subjects.latest_run_info(some_id(i)))

    async def exact(i: int) -> None:  # how it does now: the pointer, then the run's own record
        wf_id = some_id(i)
        pointer = await direct.get_last(nc, subjects.latest(wf_id))
        if pointer is not None:
            p = msgspec.msgpack.decode(pointer.data, type=LatestRun)
            await direct.get_last(nc, subjects.run_info(p.wf_type, wf_id, p.run_id))

    print(f"{stored:>7d} finished runs stored:")
    for label, op in (("start (start → reply)", start), ("describe", describe),
                      ("lookup, exact (now)", exact), ("lookup, wildcard (before)", wildcard)):
        print("    " + await timed(label, n, op, server), flush=True)


def processes(url: str, tmp: Path, retention: str) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    env = dict(os.environ, GRCTL_NATS_SERVERS=url, PYTHONPATH=str(ROOT), BENCH_MAX_CONCURRENT="200")
    engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", url, "--retention", retention],
                              env=env, stderr=open(tmp / f"engine-{retention}.log", "wb"))
    worker = subprocess.Popen([sys.executable, str(HERE / "bench_worker.py")], env=env,
                              stderr=open(tmp / f"worker-{retention}.log", "wb"))
    return engine, worker


async def ready(client: Client) -> None:
    for _ in range(300):
        try:
            await client.run_workflow("BenchTask", f"warm-{ULID()}", {"n": 0}, timeout=30)
            return
        except Exception:
            await asyncio.sleep(0.1)
    raise RuntimeError("no engine/worker")


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


async def retention_phase(url: str, tmp: Path, server: psutil.Process, n: int) -> None:
    engine, worker = processes(url, tmp, "2s")
    conn = await Connection.connect([url])
    client = Client(conn)
    try:
        await ready(client)
        before = (await conn.js.stream_info(subjects.STREAM)).state.messages
        prefix = f"ret-{ULID()}".lower()
        lat: list[float] = []
        c0 = cpu_seconds(server)
        t_start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            await client.run_workflow("BenchTask", f"{prefix}-{i}", {"n": i}, timeout=30)
            lat.append(time.perf_counter() - t0)
        await asyncio.sleep(12)  # the last removals fall due (2 s), then a sweep of the acknowledged (10 s)
        wall = time.perf_counter() - t_start
        cpu = (cpu_seconds(server) - c0) / n * 1000
        after = (await conn.js.stream_info(subjects.STREAM)).state.messages
        print(f"retention 2s, {n} runs one at a time: p50 {statistics.median(lat) * 1000:.1f} ms, "
              f"p99 {percentile(lat, 99) * 1000:.1f} ms, server cpu {cpu:.2f} ms per run (removal "
              f"included), {wall:.1f} s; messages in the stream: {before} before these runs, {after} "
              "after their removal")
    finally:
        await conn.close()
        stop(worker, engine)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,10000,100000", help="finished runs stored, comma-separated")
    parser.add_argument("-n", type=int, default=500, help="requests measured per kind and size")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="grctl-growth-"))
    server = NatsServerProcess(store_dir=tmp / "nats", log_file=tmp / "nats.log").start()
    assert server.pid is not None
    server_ps = psutil.Process(server.pid)
    conn = await Connection.connect([server.url])
    await jetstream.ensure_stream(conn.js)
    await jetstream.publish(conn.nc, LAYOUT, LATEST_POINTERS)  # the filled records come with pointers
    engine, worker = processes(server.url, tmp, "forever")
    client = Client(conn)
    stored = 0
    try:
        await ready(client)
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            if size > stored:
                t0 = time.perf_counter()
                await fill(conn, size - stored, stored)
                took = time.perf_counter() - t0
                print(f"(wrote {size - stored} finished runs in {took:.0f} s)", flush=True)
                stored = size
            await measure(client, conn, server_ps, args.n, stored)
    finally:
        stop(worker, engine)
    await retention_phase(server.url, tmp, server_ps, args.n)
    await conn.close()
    server.stop()
    print(f"logs in {tmp}")


if __name__ == "__main__":
    asyncio.run(main())
