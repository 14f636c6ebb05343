"""A workflow whose start step waits at a gate before its one task, so a test can make two worker
processes hold the same step: each process enters the step, writes ``{wf_id}.entered.{pid}`` and
waits for ``{wf_id}.go.{pid}``. The task body appends ``pid`` to ``{wf_id}.ran`` (one line per run of the
body); then it writes ``{wf_id}.done.{pid}`` and completes the run with the task's result.
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
WORKFLOWS = [claimed]


@task
async def charge(wf_id: str) -> str:
    with open(DIR / f"{wf_id}.ran", "a") as f:
        f.write(f"{os.getpid()}\n")
    return f"charged by {os.getpid()}"


@claimed.start()
async def start(ctx: Context) -> Directive:
    wf_id = ctx.run.wf_id
    pid = os.getpid()
    (DIR / f"{wf_id}.entered.{pid}").touch()
    while not (DIR / f"{wf_id}.go.{pid}").exists():  # noqa: ASYNC110 (the test makes the file)
        await asyncio.sleep(0.05)
    result = await charge(wf_id)
    (DIR / f"{wf_id}.done.{pid}").touch()
    return ctx.next.complete(result)
