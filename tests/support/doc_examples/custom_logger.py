import asyncio
import logging
import sys

from handlers import register_handlers

from grctl.nats.connection import Connection
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

order_wf = register_handlers(Workflow(workflow_type="ProcessOrder"))

workflow_logger = logging.getLogger("my_app.workflows")
workflow_logger.setLevel(logging.DEBUG)
# (not in the example: show where the logs went)
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
workflow_logger.addHandler(handler)


async def main() -> None:
    connection = await Connection.connect()
    worker = Worker(
        workflows=[order_wf],
        connection=connection,
        workflow_logger=workflow_logger,
    )
    await worker.start()

asyncio.run(main())
