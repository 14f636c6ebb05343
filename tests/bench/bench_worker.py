"""A worker process for the benchmarks, serving bench_workflows (counting metrics when started with
PROMETHEUS_MULTIPROC_DIR set, as grctld starts its workers)."""

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_workflows import WORKFLOWS

from grctl import eventloop
from grctl.nats.connection import Connection
from grctl.ops import metrics, multiproc
from grctl.worker.worker import Worker


async def main() -> None:
    if multiproc.counting_here():  # counting as in a grctld worker process (bench_metrics.py)
        metrics.enable()
    connection = await Connection.connect()
    limit = int(os.environ.get("BENCH_MAX_CONCURRENT", "200"))
    worker = Worker(workflows=WORKFLOWS, connection=connection, max_concurrent_steps=limit)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.create_task(worker.stop(shutdown_timeout=5)))
    await worker.start()


eventloop.run(main())
