import asyncio
import signal

from handlers import register_handlers

from grctl.nats.connection import Connection
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

order_wf = register_handlers(Workflow(workflow_type="ProcessOrder"))


async def main() -> None:
    connection = await Connection.connect()
    worker = Worker(workflows=[order_wf], connection=connection)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.create_task(worker.stop()))

    await worker.start()

asyncio.run(main())
