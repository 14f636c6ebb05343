"""The workflow of the full-disk tests: ``Payload`` takes a string (a large one fills the store quickly),
goes through two steps and completes with its length. Its steps have a short timeout (3 s), so a full
store that lasts longer than that shows whether a step that could not report is failed for it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow

STEP_PAUSE = 2.0  # seconds the first step takes: within its timeout
payload = Workflow("Payload")
WORKFLOWS = [payload]


@payload.start(timeout=timedelta(seconds=3))
async def start(ctx: Context, text: str) -> Directive:
    await asyncio.sleep(STEP_PAUSE)  # keeps the runs in flight while the test fills the store
    ctx.store.put("size", len(text))
    return ctx.next.step(finish)


@payload.step(timeout=timedelta(seconds=3))
async def finish(ctx: Context) -> Directive:
    return ctx.next.complete(await ctx.store.get("size"))
