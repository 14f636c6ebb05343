"""The console's Runs page among many stored runs: N run-info records (default 100,000, as
``bench_list.py`` writes them: a third failed, two types, over two days) in a real nats-server, an
engine process with ``--http``, and the page fetched over HTTP as a browser does: the newest page
(with the counts per status), the failed ones, one type, an id prefix, a page deep in the list, and
the last hour. Prints the median and worst time of each and fails if a median exceeds 300 ms.

    .venv/bin/python tests/bench/bench_console.py [-n 100000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from bench_list import store_runs
from figures import cpu_seconds

from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
BUDGET_MS = 300.0


async def ready_with(session: aiohttp.ClientSession, url: str, rows: int, timeout: float = 300.0) -> None:
    """Until the Runs page lists ``rows`` rows (the engine has read every stored run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as resp:
                if resp.status == 200 and f"{rows} matches" in await resp.text():
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError("the console did not list every run in time")


async def timed(session: aiohttp.ClientSession, url: str, repeat: int,
                engine: psutil.Process | None = None) -> tuple[float, float, float, str]:
    """(median ms, worst ms, the engine's CPU ms per request, the last page) of ``repeat`` requests."""
    times, page = [], ""
    cpu0 = cpu_seconds(engine) if engine is not None else 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        async with session.get(url) as resp:
            page = await resp.text()
            assert resp.status == 200, page[:500]
        times.append((time.perf_counter() - t0) * 1000)
    cpu = (cpu_seconds(engine) - cpu0) * 1000 / repeat if engine is not None else 0.0
    return statistics.median(times), max(times), cpu, page


async def bench(n: int, repeat: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="grctl-bench-console-"))
    server = NatsServerProcess(store_dir=tmp / "nats").start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    conn = await Connection.connect([server.url])
    engine = None
    slow = 0
    try:
        await store_runs(conn, n)
        engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", server.url, "--http",
                                   f"127.0.0.1:{port}"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                  stderr=open(tmp / "engine.log", "wb"))
        async with aiohttp.ClientSession() as session:
            await ready_with(session, f"{base}/", n)
            _, _, _, first = await timed(session, f"{base}/", 1)
            engine_ps = psutil.Process(engine.pid)
            deep = re.search(r'href="\?([^"]*after=[^"]*)" id="next-page"', first)
            assert deep, "no next page link"
            for label, query in (("newest 50 + counts", ""), ("failed", "status=failed"),
                                 ("type Orders", "type=Orders"), ("id prefix wf-9999", "q=wf-9999"),
                                 ("second page", deep.group(1).replace("&amp;", "&")),
                                 ("last hour", "range=1h")):
                median, worst, cpu, page = await timed(session, f"{base}/?{query}", repeat, engine_ps)
                rows = page.count('<td class="id">')
                slow += median > BUDGET_MS
                print(f"{label:22s} {median:7.1f} ms median, {worst:7.1f} ms max, engine CPU {cpu:6.1f} ms "
                      f"per request ({rows} rows)")
            print(f"engine rss {engine_ps.memory_info().rss / 2**20:.0f} MiB with {n} runs")
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
    print("every median under 300 ms" if not slow else f"{slow} queries over 300 ms")
    return 1 if slow else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="stored runs")
    parser.add_argument("--repeat", type=int, default=20, help="requests per query")
    args = parser.parse_args()
    sys.exit(asyncio.run(bench(args.n, args.repeat)))


if __name__ == "__main__":
    main()
