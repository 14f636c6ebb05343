"""Run a Worker in this process for the workflows of a module, as a deployment would.

    python -m support.run_worker MODULE [--max-concurrent N] [--shutdown-timeout S]

MODULE is an importable module name or a path to a .py file; its ``WORKFLOWS`` list (or every
``Workflow`` it defines) is served, with its ``CODEC`` (a ``CodecRegistry``) if it has one. NATS
servers come from the environment (GRCTL_NATS_SERVERS).
Prints ``READY <worker_id>`` once registered and consuming; SIGTERM/SIGINT stop it gracefully. Runs on
the event loop grctld gives its workers (``grctl/eventloop.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import signal
import sys
from pathlib import Path
from types import ModuleType

from grctl import eventloop
from grctl.nats.connection import Connection
from grctl.worker.worker import Worker
from grctl.workflow import Workflow


def load(target: str) -> ModuleType:
    if target.endswith(".py"):
        path = Path(target).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def workflows_of(module: ModuleType) -> list[Workflow]:
    listed = getattr(module, "WORKFLOWS", None)
    if listed:
        return list(listed)
    return [v for v in vars(module).values() if isinstance(v, Workflow)]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("--max-concurrent", type=int, default=64)
    parser.add_argument("--shutdown-timeout", type=float, default=30.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")
    module = load(args.module)
    connection = await Connection.connect()
    worker = Worker(workflows=workflows_of(module), connection=connection,
                    max_concurrent_steps=args.max_concurrent, codec=getattr(module, "CODEC", None))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.stop(args.shutdown_timeout)))
    runner = asyncio.create_task(worker.start())
    ready = asyncio.create_task(worker.wait_ready())
    await asyncio.wait({runner, ready}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done() and ready.exception() is None:
        print(f"READY {worker.worker_id}", flush=True)
    await runner


if __name__ == "__main__":
    eventloop.run(main())  # as grctld runs its workers
