"""Small workflows served by worker processes in scaling and shutdown tests."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow

DIR = Path(os.environ.get("GRCTL_TEST_DIR", "."))

one_step = Workflow("OneStep")
slow_step = Workflow("SlowStep")
WORKFLOWS = [one_step, slow_step]


@one_step.start()
async def one_start(ctx: Context, n: int) -> Directive:
    with open(DIR / f"executed.{os.getpid()}", "a") as f:
        f.write(f"{ctx.run.wf_id}\n")
    return ctx.next.complete({"n": n, "pid": os.getpid()})


@slow_step.start(timeout=timedelta(seconds=30))
async def slow_start(ctx: Context, seconds: float) -> Directive:
    (DIR / f"{ctx.run.wf_id}.started.{os.getpid()}").touch()
    await asyncio.sleep(seconds)
    return ctx.next.complete({"slept": seconds, "pid": os.getpid()})
