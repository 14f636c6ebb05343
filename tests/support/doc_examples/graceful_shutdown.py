import asyncio

from handlers import register_handlers

from grctl.nats.connection import Connection
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

order_wf = register_handlers(Workflow(workflow_type="ProcessOrder"))


async def main() -> None:
    connection = await Connection.connect()
    worker = Worker(workflows=[order_wf], connection=connection)

    worker_task = asyncio.create_task(worker.start())

    try:
        await asyncio.sleep(3600)  # run for an hour
    finally:
        await worker.stop()
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        print("stopped, connection closed:", connection.is_closed, flush=True)

asyncio.run(main())
