"""The workflow of the fault tests: three steps, each calling one ``@task``.

``Chaos`` with input ``{"n": n}`` completes with ``(n + 1) * 2 + 3``. Every execution of a task body
appends ``{wf_id} {task} {unix time} {pid}`` to ``$GRCTL_TEST_DIR/tasks.log`` (one ``write`` on a file opened
with O_APPEND, so lines from several processes never interleave); the harness compares those times
with the recorded ``task.completed`` events to find a body that ran again after its outcome was recorded.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

DIR = Path(os.environ.get("GRCTL_TEST_DIR", "."))
TASK_LOG = "tasks.log"
# How long each task body takes after its log line: long enough, and a kill of its worker interrupts
# bodies that then run again elsewhere (two log lines), which proves the kill hit work in flight.
TASK_SECONDS_ENV = "GRCTL_CHAOS_TASK_SECONDS"
TASK_SECONDS = float(os.environ.get(TASK_SECONDS_ENV, "0"))
TASKS = ("add_one", "double", "add_three")  # the task names each run's log lines carry

chaos = Workflow("Chaos")
WORKFLOWS = [chaos]
# A step's timeout counts its redeliveries too (docs/operations.md, capacity and tuning): a worker killed
# mid-step hands it on only after the ack wait (5 s). Under a loaded machine the default 10 s left too
# little for a pick-up, a kill and a redelivery; the faults under test must cost latency, not the run.
STEP_TIMEOUT = 30  # s


async def _executed(wf_id: str, name: str) -> None:
    line = f"{wf_id} {name} {time.time():.6f} {os.getpid()}\n".encode()
    fd = os.open(DIR / TASK_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    if TASK_SECONDS:
        await asyncio.sleep(TASK_SECONDS)


@task
async def add_one(wf_id: str, n: int) -> int:
    await _executed(wf_id, "add_one")
    return n + 1


@task
async def double(wf_id: str, n: int) -> int:
    await _executed(wf_id, "double")
    return n * 2


@task
async def add_three(wf_id: str, n: int) -> int:
    await _executed(wf_id, "add_three")
    return n + 3


@chaos.start(timeout=STEP_TIMEOUT)
async def start(ctx: Context, n: int) -> Directive:
    ctx.store.put("x", await add_one(ctx.run.wf_id, n))
    return ctx.next.step(middle)


@chaos.step(timeout=STEP_TIMEOUT)
async def middle(ctx: Context) -> Directive:
    ctx.store.put("x", await double(ctx.run.wf_id, await ctx.store.get("x")))
    return ctx.next.step(last)


@chaos.step(timeout=STEP_TIMEOUT)
async def last(ctx: Context) -> Directive:
    return ctx.next.complete(await add_three(ctx.run.wf_id, await ctx.store.get("x")))


def expected(n: int) -> int:
    return (n + 1) * 2 + 3
