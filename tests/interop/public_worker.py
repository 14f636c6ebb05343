"""A worker built with the public grctl SDK 0.3.0 (runs in its own Python 3.13 environment).

Serves the workflow type "PublicInterop"; NATS address from ENGINE_NATS_SERVERS, as that SDK reads it.
"""

import asyncio
import signal

from grctl.nats.connection import Connection
from grctl.worker import task
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

wf = Workflow(workflow_type="PublicInterop")


@task
async def shout(value: str) -> str:
    return value.upper()


@wf.start()
async def start(ctx, value: str):
    loud = await shout(value)
    ctx.store.put("loud", loud)
    return ctx.next.step(finish)


@wf.step()
async def finish(ctx):
    loud = await ctx.store.get("loud")
    return ctx.next.complete({"loud": loud, "run": ctx.run.wf_id})


async def main() -> None:
    connection = await Connection.connect()
    worker = Worker(workflows=[wf], connection=connection)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.create_task(worker.stop()))
    print("public worker starting", flush=True)
    await worker.start()


asyncio.run(main())
