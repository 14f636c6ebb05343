"""A small demo workflow, run by ``grctld -c grctl.yaml.example``.

    grctl run Greeting --id greet-1 --input '{"name": "Ada"}'   (or Client(conn).run_workflow(...))

``Greeting`` takes a name, writes it down in the run's store, and completes with a greeting.
"""

from __future__ import annotations

from datetime import timedelta

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow

greeting = Workflow(workflow_type="Greeting")


@greeting.start(timeout=timedelta(seconds=30))
async def start(ctx: Context, name: str = "world") -> Directive:
    ctx.logger.info("greeting %s", name)
    ctx.store.put("name", name)
    return ctx.next.step(compose)


@greeting.step(timeout=timedelta(seconds=30))
async def compose(ctx: Context) -> Directive:
    name = await ctx.store.get("name")
    return ctx.next.complete(f"Hello, {name}!")
