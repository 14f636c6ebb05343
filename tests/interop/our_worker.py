"""Our worker serving the workflow type "OurInterop", for the public SDK's client to run."""

import asyncio
import signal

from grctl.nats.connection import Connection
from grctl.worker.task import task
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

wf = Workflow(workflow_type="OurInterop")


@task
async def double(n: int) -> int:
    return n * 2


@wf.start()
async def start(ctx, n: int):
    ctx.store.put("doubled", await double(n))
    return ctx.next.step(finish)


@wf.step()
async def finish(ctx):
    doubled = await ctx.store.get("doubled")
    return ctx.next.complete({"doubled": doubled, "wf_id": ctx.run.wf_id})


async def main() -> None:
    connection = await Connection.connect()
    worker = Worker(workflows=[wf], connection=connection)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.create_task(worker.stop()))
    await worker.start()


asyncio.run(main())
