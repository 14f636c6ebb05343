"""Workflows served by a worker process in the ``grctl`` command line tests.

``CliFlow`` does what its input's ``mode`` says: complete at once, fail, wait for ``finish``, or run a
long step (to be cancelled or terminated). A step that is cancelled writes ``{wf_id}.cancelled`` in
``GRCTL_TEST_DIR``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow

DIR = Path(os.environ.get("GRCTL_TEST_DIR", "."))

cli_flow = Workflow("CliFlow")
WORKFLOWS = [cli_flow]


@cli_flow.start(timeout=timedelta(seconds=60))
async def start(ctx: Context, mode: str = "ok", name: str = "world") -> Directive:
    if mode == "fail":
        raise ValueError("cli exploded")
    if mode == "wait":
        return ctx.next.wait()
    if mode == "slow":
        return ctx.next.step(slow_step)
    return ctx.next.complete({"greeting": f"Hello, {name}!", "mode": mode})


@cli_flow.step(timeout=timedelta(seconds=60))
async def slow_step(ctx: Context) -> Directive:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        (DIR / f"{ctx.run.wf_id}.cancelled").touch()
        raise
    return ctx.next.complete("slept")


@cli_flow.event()
async def finish(ctx: Context, result: str = "done") -> Directive:
    return ctx.next.complete(result)
