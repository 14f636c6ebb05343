import asyncio

from handlers import register_handlers

from grctl.nats.connection import Connection
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

order_wf = register_handlers(Workflow(workflow_type="ProcessOrder"))
payment_wf = register_handlers(Workflow(workflow_type="ProcessPayment"))
notification_wf = register_handlers(Workflow(workflow_type="SendNotification"))


async def main() -> None:
    connection = await Connection.connect()
    worker = Worker(
        workflows=[order_wf, payment_wf, notification_wf],
        connection=connection,
    )
    await worker.start()

asyncio.run(main())
