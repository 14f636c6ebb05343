"""A workflow whose start step waits, mid-step, while the test restarts the NATS server.

The step runs task ``before``, writes ``$GRCTL_TEST_DIR/{wf_id}.started``, waits for
``{wf_id}.go`` to appear, runs task ``after`` and goes on to a second step. Task bodies append to
``{task}.count`` so the test can count executions.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

DIR = Path(os.environ.get("GRCTL_TEST_DIR", "."))

outage = Workflow("Outage")
WORKFLOWS = [outage]


def count(name: str, wf_id: str) -> None:
    with open(DIR / f"{name}.count", "a") as f:
        f.write(wf_id + "\n")


@task
async def before(wf_id: str) -> str:
    count("before", wf_id)
    return "b"


@task
async def after(wf_id: str) -> str:
    count("after", wf_id)
    return "a"


@outage.start()
async def start(ctx: Context) -> Directive:
    wf_id = ctx.run.wf_id
    ctx.store.put("first", await before(wf_id))
    (DIR / f"{wf_id}.started").touch()
    while not (DIR / f"{wf_id}.go").exists():  # noqa: ASYNC110 (another process makes the file)
        await asyncio.sleep(0.05)
    ctx.store.put("second", await after(wf_id))
    return ctx.next.step(finish)


@outage.step()
async def finish(ctx: Context) -> Directive:
    return ctx.next.complete((await ctx.store.get("first")) + (await ctx.store.get("second")))
