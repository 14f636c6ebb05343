"""Engine commit throughput with and without group commit (figures, not pass/fail).

An engine process on a real nats-server (file storage unless --memory) and, in this process, a light
fake worker answering every task at once (step_picked_up + step_result → complete). Each run costs
the engine four commits (run.start, start, pick-up, result). Prints transitions/s and the batches.

    .venv/bin/python tests/bench/bench_engine_commit.py [-n 2000] [--concurrency 200] [--memory]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.fake_worker import FakeWorker  # noqa: E402

from grctl import settings  # noqa: E402
from grctl.models import HistoryKind, decode_directive  # noqa: E402
from grctl.nats import subjects  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402
from grctl.nats.server import NatsServerProcess  # noqa: E402

ENGINE_PROGRAM = """
import asyncio, logging, signal, sys
from grctl.engine import Engine
from grctl.nats.connection import Connection
logging.basicConfig(level=logging.ERROR)
async def serve():
    conn = await Connection.connect([sys.argv[1]])
    engine = Engine(conn, group_commit=sys.argv[2] == "1", memory=sys.argv[3] == "1")
    await engine.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    c = engine.committer
    print(f"batches={c.batches} transitions={c.transitions} split={c.split_batches}", flush=True)
    await engine.stop()
    await conn.close()
asyncio.run(serve())
"""
# The engine drains within ENGINE_STOP_TIMEOUT; past this it is killed and the run reported as failed.
ENGINE_EXIT_GRACE = settings.ENGINE_STOP_TIMEOUT + 10.0  # s
DRAIN_DEADLINE = 60.0  # s; the engine's directive consumer empties within this once every task is answered


@contextlib.contextmanager
def engine_process(url: str, group: str, memory: bool) -> Iterator[subprocess.Popen[str]]:
    """The engine child, stopped on every way out: left running after a failure it would keep the
    caller's stderr pipe open (and reconnect forever), so whoever waits for this script never returns."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-c", ENGINE_PROGRAM, url, group, "1" if memory else "0"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop_engine(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then the stats the engine prints; an engine that does not stop is an error, not a wait."""
    proc.terminate()
    try:
        stats, _ = proc.communicate(timeout=ENGINE_EXIT_GRACE)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"engine did not stop within {ENGINE_EXIT_GRACE:.0f}s of SIGTERM") from None
    return stats.strip()


async def drive(url: str, n: int, concurrency: int) -> float:
    conn = await Connection.connect([url])
    worker = FakeWorker(conn)
    await worker.register("Bench")
    await conn.js.add_consumer(subjects.STREAM, ConsumerConfig(
        durable_name="bench", filter_subject=subjects.worker_task_filter("Bench"), ack_policy=AckPolicy.NONE))
    psub = await conn.js.pull_subscribe_bind("bench", stream=subjects.STREAM)
    answered = 0

    async def answer() -> None:
        nonlocal answered
        while answered < n:
            try:
                msgs = await psub.fetch(256, timeout=1)
            except Exception:
                continue
            tasks = [decode_directive(m.data) for m in msgs]
            await asyncio.gather(*(worker.picked_up(t, "start") for t in tasks))
            await asyncio.gather(*(worker.result(t, "complete", {"result": 1}) for t in tasks))
            answered += len(tasks)

    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            resp, _ = await worker.start("Bench", f"bench-{i}")
            assert resp.success, resp

    t0 = time.perf_counter()
    answerer = asyncio.create_task(answer())
    await asyncio.gather(*(one(i) for i in range(n)))
    await answerer
    deadline = time.monotonic() + DRAIN_DEADLINE
    while True:
        ci = await conn.js.consumer_info(subjects.STREAM, subjects.DIRECTIVE_CONSUMER)
        if ci.num_pending == 0 and ci.num_ack_pending == 0:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"engine left {ci.num_pending} directives pending, {ci.num_ack_pending} unacked "
                             f"{DRAIN_DEADLINE:.0f}s after the last task was answered")
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - t0
    last = await worker.run_info(f"bench-{n - 1}")
    assert last is not None
    assert (await worker.kinds(last.wf_id, last.id))[-1] == HistoryKind.run_completed
    await conn.close()
    return elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--memory", action="store_true")
    args = ap.parse_args()
    for group in ("0", "1"):
        tmp = Path(tempfile.mkdtemp(prefix="grctl-bench-"))
        with NatsServerProcess(store_dir=tmp / "nats") as server, \
                engine_process(server.url, group, args.memory) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            elapsed = await drive(server.url, args.n, args.concurrency)
            stats = stop_engine(proc)
            label = "group commit" if group == "1" else "one batch per transition"
            print(f"{label:26s} {args.n} runs in {elapsed:.2f}s: {4 * args.n / elapsed:6.0f} transitions/s, "
                  f"{args.n / elapsed:5.0f} runs/s  ({stats})", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
