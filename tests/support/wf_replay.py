"""Workflows for the crash/replay tests (docs/protocol.md#replay-and-operation-ids), served by worker
processes.

Worker A runs with PAUSE=1: once ``work_step`` has done its recorded work it writes
``$GRCTL_TEST_DIR/{wf_id}.paused`` and sleeps until it is killed. Worker B (no PAUSE) receives the
redelivered task and must replay what A recorded. GREET and ORDER change B's behaviour to provoke
nondeterminism. Task bodies append to ``$GRCTL_TEST_DIR/{task}.count`` so tests can count executions.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

from grctl.models import Directive
from grctl.models.directive import RetryPolicy
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

DIR = Path(os.environ.get("GRCTL_TEST_DIR", "."))

replay = Workflow("Replay")
replay_child = Workflow("ReplayChild")
WORKFLOWS = [replay, replay_child]


def count(name: str, wf_id: str) -> None:
    with open(DIR / f"{name}.count", "a") as f:
        f.write(wf_id + "\n")


async def pause(ctx: Context) -> None:
    if os.environ.get("PAUSE"):
        (DIR / f"{ctx.run.wf_id}.paused").touch()
        await asyncio.sleep(3600)


@task
async def simple_task(wf_id: str) -> str:
    count("simple_task", wf_id)
    return "done"


@task
async def after_task(wf_id: str) -> str:
    count("after_task", wf_id)
    return "after"


@task(retry_policy=RetryPolicy(max_attempts=2, initial_delay_ms=1))
async def fail_task(wf_id: str) -> str:
    count("fail_task", wf_id)
    raise ValueError("original error")


@task
async def cancel_task(wf_id: str) -> str:
    count("cancel_task", wf_id)
    raise asyncio.CancelledError


@task
async def greet(name: str) -> str:
    return f"hello {name}"


@task
async def task_a() -> str:
    return "a"


@task
async def task_b() -> str:
    return "b"


@replay.start()
async def start(ctx: Context, scenario: str) -> Directive:
    ctx.store.put("scenario", scenario)
    return ctx.next.step(work_step)


@replay.step(timeout=timedelta(seconds=30))
async def work_step(ctx: Context) -> Directive:
    scenario = await ctx.store.get("scenario")
    wf_id = ctx.run.wf_id
    if scenario == "completed":
        first = await simple_task(wf_id)
        await pause(ctx)
        return ctx.next.complete(f"{first}-{await after_task(wf_id)}")
    if scenario == "failed":
        try:
            await fail_task(wf_id)
        except ValueError:
            await pause(ctx)
            raise
    if scenario == "cancelled":
        try:
            await cancel_task(wf_id)
        except asyncio.CancelledError:
            await pause(ctx)
            return ctx.next.complete("cancelled")
    if scenario == "nondet_arg":
        await greet(os.environ.get("GREET", "hello"))
        await pause(ctx)
        return ctx.next.complete("same")
    if scenario == "nondet_order":
        for which in os.environ.get("ORDER", "ab"):
            await (task_a if which == "a" else task_b)()
        await pause(ctx)
        return ctx.next.complete("same")
    if scenario == "values":
        now, rnd, uid = await ctx.now(), await ctx.random(), await ctx.uuid4()
        await ctx.sleep(timedelta(milliseconds=100))
        await pause(ctx)
        return ctx.next.complete({"now": now, "random": rnd, "uuid": str(uid)})
    if scenario == "sleep":
        await ctx.sleep(timedelta(seconds=2))
        await pause(ctx)
        return ctx.next.complete("slept")
    if scenario == "child":
        handle = await ctx.start_child("ReplayChild", f"{wf_id}-child", {"send": False})
        await pause(ctx)
        return ctx.next.complete(await handle.result(timeout=10))
    if scenario == "sender":
        await ctx.start_child("ReplayChild", f"{wf_id}-child", {"send": True})
        await pause(ctx)
        return ctx.next.wait()
    raise ValueError(f"unknown scenario {scenario!r}")


@replay.event()
async def from_child(ctx: Context, payload: str) -> Directive:
    return ctx.next.complete(payload)


@replay_child.start()
async def child_start(ctx: Context, send: bool) -> Directive:
    count("child_start", ctx.run.wf_id)
    if send:
        await ctx.send_to_parent("from_child", "sent-once")
        await pause(ctx)
    return ctx.next.complete("child-done")
