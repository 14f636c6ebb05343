"""The handlers the examples leave out ("# ... register handlers ..."), shared by the scripts."""

import asyncio

from grctl.workflow import Workflow


def register_handlers(wf: Workflow) -> Workflow:
    @wf.start()
    async def start(ctx, order_id: str, seconds: float = 0.0):
        ctx.logger.info("processing %s in %s", order_id, ctx.run.wf_type)
        await asyncio.sleep(seconds)
        return ctx.next.complete(f"{ctx.run.wf_type} processed {order_id}")

    return wf
