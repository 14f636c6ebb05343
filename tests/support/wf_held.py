"""A workflow that waits for the event ``release``, served by worker processes in the schedule tests:
the test decides when the previous run of a schedule ends."""

from __future__ import annotations

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow

held = Workflow("Held")
WORKFLOWS = [held]


@held.start()
async def held_start(ctx: Context) -> Directive:
    return ctx.next.wait()


@held.event()
async def release(ctx: Context) -> Directive:
    return ctx.next.complete("released")
