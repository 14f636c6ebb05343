"""What fsync costs: the same load on a single file-backed nats-server with JetStream's sync_interval at
``always`` (fsync after every write, what grctld's embedded server uses by default) and at nats-server's
own default (data handed to the OS at once, flushed to disk every 2 minutes). Prints workflows/s and
latency percentiles of three-step workflows (one task per step), at full load and one run at a time.

    .venv/bin/python tests/bench/bench_sync_interval.py [-n 600] [--concurrency 100] [--modes always]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from benchkit import Deployment, run_load
from figures import exit_status

from grctl.nats.server import NatsServerProcess

MODES = {"always": ("sync_interval: always", "always"), "1s": ("sync_interval: 1s", "1000ms"),
         "default": ("nats-server default (2m)", None)}


async def bench(runs: int, concurrency: int, serial_runs: int, modes: list[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="grctl-bench-sync-"))
    print(f"store under {root} (ext4 here); {runs} runs at {concurrency} in flight, then {serial_runs} "
          "one at a time", flush=True)
    try:
        for label, interval in (MODES[m] for m in modes):
            store = root / (interval or "default")
            server = NatsServerProcess(store_dir=store, sync_interval=interval).start()
            deployment = Deployment([server.url], store / "logs").start()
            try:
                loaded, _ = await run_load([server.url], f"{label}, loaded", runs, concurrency)
                print(loaded.line(), flush=True)
                serial, _ = await run_load([server.url], f"{label}, serial", serial_runs, 1)
                print(serial.line(), flush=True)
            finally:
                deployment.stop()
                server.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=600, help="workflows of the loaded run")
    parser.add_argument("--concurrency", type=int, default=100, help="workflows in flight at once")
    parser.add_argument("--serial", type=int, default=50, help="workflows run one at a time")
    parser.add_argument("--modes", default="always,1s,default",
                        help="comma-separated, among always, 1s and default")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    asyncio.run(bench(args.n, args.concurrency, args.serial, modes))
    sys.exit(exit_status())


if __name__ == "__main__":
    main()
