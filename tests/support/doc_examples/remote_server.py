import asyncio
import sys

from handlers import register_handlers

from grctl.nats.connection import Connection
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

order_wf = register_handlers(Workflow(workflow_type="ProcessOrder"))
SERVER = sys.argv[1]  # the example's "nats://prod-server:4225"


async def main() -> None:
    connection = await Connection.connect(servers=[SERVER])
    worker = Worker(workflows=[order_wf], connection=connection)
    await worker.start()

asyncio.run(main())
