"""Listing runs among many stored ones: N run-info records (default 100,000: a third failed, the rest
completed, two workflow types, created over the last two days) are written to a real nats-server, an
engine process starts, and ``Client.list_runs`` (what ``grctl list`` calls) is timed: the newest 100,
the failed ones of the last hour, one type. Also prints how long the engine took to read the records
and its memory. Figures, not pass/fail.

    .venv/bin/python tests/bench/bench_list.py [-n 100000] [--repeat 20]
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
from datetime import timedelta
from pathlib import Path

import msgspec
import psutil
from ulid import ULID

from grctl.client.client import Client
from grctl.engine.migrate import LATEST_POINTERS, LAYOUT
from grctl.models.common import RunInfo, RunStatus, utcnow
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.jetstream import ensure_stream
from grctl.nats.server import NatsServerProcess

ROOT = Path(__file__).resolve().parents[2]


async def store_runs(conn: Connection, n: int) -> None:
    """Write ``n`` finished runs' run-info records, as the engine does when runs end."""
    await ensure_stream(conn.js)
    now = utcnow()

    async def one(i: int) -> None:
        created = now - timedelta(seconds=(n - i) * 172800 / n)  # spread over two days, oldest first
        status = RunStatus.failed if i % 3 == 0 else RunStatus.completed
        wf_type = "Orders" if i % 2 else "Invoices"
        info = RunInfo(id=str(ULID()), wf_id=f"wf-{i}", wf_type=wf_type, status=status, created_at=created,
                       started_at=created, completed_at=created + timedelta(seconds=1))
        await conn.js.publish(subjects.run_info(wf_type, info.wf_id, info.id), msgspec.msgpack.encode(info))

    for start in range(0, n, 1000):  # acknowledged publishes, a thousand at a time
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 1000))))
    # As a stream our engine wrote: it has its latest-run pointers (the listing does not read them), so
    # the engine's one-off upgrade of older streams is not what gets timed.
    await conn.js.publish(LAYOUT, LATEST_POINTERS)
    info = await conn.js.stream_info(subjects.STREAM)
    if info.state.messages < n:
        raise RuntimeError(f"only {info.state.messages} of {n} records were stored")


async def timed(repeat: int, call: object) -> tuple[float, float, int]:
    """(median ms, max ms, runs returned) of ``repeat`` calls."""
    times = []
    count = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = len(await call())  # type: ignore[operator]
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times), count


async def bench(n: int, repeat: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="grctl-bench-list-"))
    server = NatsServerProcess(store_dir=tmp / "nats").start()
    env = dict(os.environ, GRCTL_NATS_SERVERS=server.url, PYTHONPATH=str(ROOT))
    conn = await Connection.connect([server.url])
    engine = None
    try:
        t0 = time.perf_counter()
        await store_runs(conn, n)
        print(f"stored {n} run infos in {time.perf_counter() - t0:.1f} s")
        started = time.perf_counter()
        engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", server.url], env=env,
                                  stderr=open(tmp / "engine.log", "wb"))
        client = Client(conn, retry_for=120)
        first = await client.list_runs(limit=1)  # waits for the engine, then for its index
        print(f"engine start to first answer (reading every run info): {time.perf_counter() - started:.1f} s"
              f" ({len(first)} run)")
        rss = psutil.Process(engine.pid).memory_info().rss / 2**20
        for label, call in (
            ("newest 100", lambda: client.list_runs(limit=100)),
            ("failed, last hour", lambda: client.list_runs(status="failed", since=timedelta(hours=1))),
            ("type Orders, newest 100", lambda: client.list_runs(type="Orders", limit=100)),
            ("newest 1000", lambda: client.list_runs(limit=1000)),
        ):
            median, worst, count = await timed(repeat, call)
            print(f"{label:24s} {median:7.1f} ms median, {worst:7.1f} ms max ({count} runs)")
        print(f"engine rss {rss:.0f} MiB with {n} runs indexed")
    finally:
        await conn.close()
        if engine is not None:
            engine.terminate()
            try:
                engine.wait(timeout=15)
            except subprocess.TimeoutExpired:
                engine.kill()
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="stored runs")
    parser.add_argument("--repeat", type=int, default=20, help="calls per query")
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.repeat))


if __name__ == "__main__":
    main()
