import asyncio

from handlers import register_handlers

from grctl.nats.connection import Connection
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

order_wf = Workflow(workflow_type="ProcessOrder")
# ... register handlers ...
register_handlers(order_wf)


async def main() -> None:
    connection = await Connection.connect()
    worker = Worker(
        workflows=[order_wf],
        connection=connection,
    )
    await worker.start()

asyncio.run(main())
