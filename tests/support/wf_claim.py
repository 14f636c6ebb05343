"""Workflows that wait at a gate, so a test can make two worker processes hold the same step: each
process writes ``{wf_id}.entered.{pid}`` and waits for ``{wf_id}.go.{pid}``. ``Claimed`` waits in its
start step before its one task, ``ClaimedInTask`` inside the task's body (after its claim). A task body
appends ``pid`` to ``{wf_id}.ran`` (one line per run of the body); ``Claimed`` then writes
``{wf_id}.done.{pid}``. Each run completes with ``charged by {pid}`` of the body whose result counts.
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

claimed = Workflow("Claimed")
claimed_in_task = Workflow("ClaimedInTask")
WORKFLOWS = [claimed, claimed_in_task]


async def gate(wf_id: str) -> None:
    pid = os.getpid()
    (DIR / f"{wf_id}.entered.{pid}").touch()
    while not (DIR / f"{wf_id}.go.{pid}").exists():  # noqa: ASYNC110 (the test makes the file)
        await asyncio.sleep(0.05)


@task
async def charge(wf_id: str) -> str:
    with open(DIR / f"{wf_id}.ran", "a") as f:
        f.write(f"{os.getpid()}\n")
    return f"charged by {os.getpid()}"


@claimed.start()
async def start(ctx: Context) -> Directive:
    wf_id = ctx.run.wf_id
    await gate(wf_id)
    result = await charge(wf_id)
    (DIR / f"{wf_id}.done.{os.getpid()}").touch()
    return ctx.next.complete(result)


@task
async def slow_charge(wf_id: str) -> str:
    with open(DIR / f"{wf_id}.ran", "a") as f:
        f.write(f"{os.getpid()}\n")
    await gate(wf_id)
    return f"charged by {os.getpid()}"


@claimed_in_task.start()
async def start_in_task(ctx: Context) -> Directive:
    return ctx.next.complete(await slow_charge(ctx.run.wf_id))
