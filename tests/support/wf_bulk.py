"""A one-step workflow whose step calls one task, for load tests: ``Bulk`` with ``{"n": n}`` completes
with ``n``."""

from __future__ import annotations

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

bulk = Workflow("Bulk")
WORKFLOWS = [bulk]


@task
async def echo(n: int) -> int:
    return n


@bulk.start()
async def start(ctx: Context, n: int) -> Directive:
    return ctx.next.complete(await echo(n))
