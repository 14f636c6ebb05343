"""A three-step workflow with one task per step, for the cluster tests and benchmarks.

``Triple`` with input ``n`` completes with ``n + 111``: the tasks add 1, 10 and 100 in turn, and the
running value goes from step to step through the workflow store. When ``GRCTL_TEST_DIR`` is set, every
task body appends ``wf_id task unix_time`` to ``tasks.{pid}`` there before it returns, so a test can
tell whether a body ran again after its completion was recorded.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

TRACE_DIR = os.environ.get("GRCTL_TEST_DIR")

triple = Workflow("Triple")
WORKFLOWS = [triple]


def trace(wf_id: str, name: str) -> None:
    if TRACE_DIR:
        with open(Path(TRACE_DIR) / f"tasks.{os.getpid()}", "a") as f:
            f.write(f"{wf_id} {name} {time.time():.6f}\n")


@task
async def add_one(wf_id: str, value: int) -> int:
    trace(wf_id, "add_one")
    return value + 1


@task
async def add_ten(wf_id: str, value: int) -> int:
    trace(wf_id, "add_ten")
    return value + 10


@task
async def add_hundred(wf_id: str, value: int) -> int:
    trace(wf_id, "add_hundred")
    return value + 100


@triple.start(timeout=timedelta(seconds=60))
async def first(ctx: Context, n: int) -> Directive:
    ctx.store.put("value", await add_one(ctx.run.wf_id, n))
    return ctx.next.step(second)


@triple.step(timeout=timedelta(seconds=60))
async def second(ctx: Context) -> Directive:
    ctx.store.put("value", await add_ten(ctx.run.wf_id, await ctx.store.get("value")))
    return ctx.next.step(third)


@triple.step(timeout=timedelta(seconds=60))
async def third(ctx: Context) -> Directive:
    return ctx.next.complete(await add_hundred(ctx.run.wf_id, await ctx.store.get("value")))
