"""A worker built with the public grctl SDK 0.3.0 serving the benchmark workflows (tests/bench/
bench_workflows.py) under the type names ``Pub…``, for bench_vs_public.py. Runs in the public SDK's own
Python 3.13 environment; NATS address from ENGINE_NATS_SERVERS, as that SDK reads it."""

import asyncio
import os
import signal
import sys
from pathlib import Path

os.environ["BENCH_TYPE_PREFIX"] = "Pub"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from bench_workflows import WORKFLOWS

from grctl.nats.connection import Connection
from grctl.worker.worker import Worker


async def main() -> None:
    connection = await Connection.connect()
    worker = Worker(workflows=WORKFLOWS, connection=connection)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.create_task(worker.stop()))
    print("public worker starting", flush=True)
    await worker.start()


asyncio.run(main())
