"""The floor under a step: what nats-server itself takes, one operation at a time, for the writes a step
is made of. A round trip (a JetStream API request that stores nothing), a plain acked publish (a
worker's claim or task record), and an atomic batch of 1, 3 and 6 messages (an engine transition:
history, state, run info, the next directive...), each on a file store at ``sync_interval: always``
and at nats-server's default, on the given store directories (the disk, and a tmpfs to see what the
disk adds). Prints the median and p90 of each, in milliseconds.

    .venv/bin/python tests/bench/bench_commit_floor.py [-n 200] [--store-dir DIR ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from figures import exit_status, percentile, problem  # noqa: E402

from grctl.nats import subjects  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402
from grctl.nats.jetstream import OutMsg, ensure_stream, publish, publish_batch  # noqa: E402
from grctl.nats.requests import request  # noqa: E402
from grctl.nats.server import NatsServerProcess  # noqa: E402

PAYLOAD = b"x" * 200  # about a run info or a small history event
INTERVALS = {"always": "always", "default": None}


def _msgs(first: int, count: int) -> list[OutMsg]:
    return [OutMsg(subjects.run_info("Floor", "floor", f"r{first + k}"), PAYLOAD) for k in range(count)]


async def _timed(n: int, operation: Callable[[int], Awaitable[object]]) -> list[float]:
    took = []
    for i in range(n):
        began = time.perf_counter()
        await operation(i * 10)
        took.append((time.perf_counter() - began) * 1000)
    return took


async def measure(store: Path, interval: str, n: int) -> None:
    with NatsServerProcess(store_dir=store / "nats", sync_interval=INTERVALS[interval]) as server:
        conn = await Connection.connect([server.url])
        try:
            await ensure_stream(conn.js)
            nc = conn.nc
            operations: dict[str, Callable[[int], Awaitable[object]]] = {
                "round trip": lambda i: request(nc, "$JS.API.INFO", b""),
                "publish": lambda i: publish(nc, subjects.run_info("Floor", "floor", f"p{i}"), PAYLOAD),
                "atomic batch of 1": lambda i: publish_batch(nc, _msgs(i, 1)),
                "atomic batch of 3": lambda i: publish_batch(nc, _msgs(i, 3)),
                "atomic batch of 6": lambda i: publish_batch(nc, _msgs(i, 6)),
            }
            for label, operation in operations.items():
                took = await _timed(n, operation)
                print(f"{interval:8s} {label:18s} p50 {percentile(took, 50):6.2f} ms   "
                      f"p90 {percentile(took, 90):6.2f} ms", flush=True)
        except Exception as exc:
            problem(f"{interval} on {store}: {type(exc).__name__}: {exc}")
        finally:
            await conn.close()


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="operations of each kind")
    ap.add_argument("--store-dir", action="append", type=Path,
                    help="where the store goes (repeatable; default: the temp directory, and /dev/shm)")
    args = ap.parse_args()
    places = args.store_dir or [Path(tempfile.gettempdir()), Path("/dev/shm")]
    for place in places:
        if not place.is_dir():
            problem(f"{place} is not a directory")
            continue
        print(f"store under {place}", flush=True)
        for interval in INTERVALS:
            with tempfile.TemporaryDirectory(dir=place, prefix="grctl-floor-") as tmp:
                await measure(Path(tmp), interval, args.n)
    return exit_status()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
