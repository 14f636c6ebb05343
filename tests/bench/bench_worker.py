"""A worker process for the benchmark, serving bench_workflows."""

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_workflows import WORKFLOWS

from grctl.nats.connection import Connection
from grctl.worker.worker import Worker


async def main() -> None:
    connection = await Connection.connect()
    limit = int(os.environ.get("BENCH_MAX_CONCURRENT", "200"))
    worker = Worker(workflows=WORKFLOWS, connection=connection, max_concurrent_steps=limit)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.create_task(worker.stop(shutdown_timeout=5)))
    await worker.start()


asyncio.run(main())
