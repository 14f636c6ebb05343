"""The console's HTTP tests serve ``ProcessOrder`` (see ``support.wf_console``) and a parent of it:
``OrderBatch`` runs one order as a child workflow and completes with the child's result, so the Run
page has a parent and a child to link."""

from __future__ import annotations

from datetime import timedelta

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow
from support.wf_console import orders

batch = Workflow("OrderBatch")
WORKFLOWS = [orders, batch]


@batch.start(timeout=timedelta(seconds=30))
async def start(ctx: Context, order_id: str) -> Directive:
    order = {"order_id": order_id, "amount": 1}
    receipt = await ctx.run_child("ProcessOrder", f"{ctx.run.wf_id}-order", order, timeout=25)
    return ctx.next.complete({"orders": [receipt]})
