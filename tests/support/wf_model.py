"""Workflows served by a worker process in the workflow-model tests (events, waits, terminate, children).

Steps that must stay running while a test acts poll for a release file ``{wf_id}.release`` in
``GRCTL_TEST_DIR``; a step stopped by the engine writes ``{wf_id}.cancelled`` holding the time.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

from grctl.models import Directive
from grctl.worker import ChildOutcome
from grctl.worker.context import Context
from grctl.workflow import Workflow

DIR = Path(os.environ.get("GRCTL_TEST_DIR", "."))


async def held(ctx: Context, seconds: float = 30.0) -> None:
    """Until the test writes ``{wf_id}.release`` (or ``seconds`` pass)."""
    release = DIR / f"{ctx.run.wf_id}.release"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if release.exists():
            return
        await asyncio.sleep(0.02)


async def sleep_until_stopped(ctx: Context) -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        (DIR / f"{ctx.run.wf_id}.cancelled").write_text(repr(time.time()))
        raise


# --- Inbox: events and waits -------------------------------------------------------------------------

inbox = Workflow("Inbox")


@inbox.start(timeout=timedelta(seconds=60))
async def inbox_start(ctx: Context, expect: int = 1, hold: bool = False) -> Directive:
    """Collect ``expect`` ``record`` events (in the order handled), then complete with them."""
    ctx.store.put("expect", expect)
    ctx.store.put("seen", [])
    if hold:
        await held(ctx)
    return ctx.next.wait()


@inbox.event()
async def record(ctx: Context, n: int) -> Directive:
    seen = [*await ctx.store.get("seen"), n]
    ctx.store.put("seen", seen)
    if len(seen) >= await ctx.store.get("expect"):
        return ctx.next.complete(seen)
    return ctx.next.wait()


@inbox.event()
async def finish(ctx: Context, result: str = "done") -> Directive:
    return ctx.next.complete(result)


@inbox.event()
async def approve(ctx: Context) -> Directive:
    return ctx.next.complete("approve")


@inbox.event()
async def reject(ctx: Context) -> Directive:
    return ctx.next.complete("reject")


# --- Timed: wait timeouts ----------------------------------------------------------------------------

timed = Workflow("Timed")


@timed.start()
async def timed_start(ctx: Context) -> Directive:
    return ctx.next.wait(timeout=timedelta(milliseconds=300), on_timeout=on_timeout)


@timed.step()
async def on_timeout(ctx: Context) -> Directive:
    return ctx.next.complete("timed_out")


@timed.event()
async def go(ctx: Context) -> Directive:
    return ctx.next.step(linger)


@timed.step()
async def linger(ctx: Context) -> Directive:
    await asyncio.sleep(0.8)  # well past the wait timer's expiry
    return ctx.next.complete("went")


# --- Long: a step that only ends when stopped ------------------------------------------------------------

long_wf = Workflow("Long")


@long_wf.start()
async def long_start(ctx: Context) -> Directive:
    return ctx.next.step(long_step)


@long_wf.step(timeout=timedelta(seconds=60))
async def long_step(ctx: Context) -> Directive:
    await sleep_until_stopped(ctx)
    return ctx.next.complete("never")


# --- Children: how a child's end reaches its parent's callback -------------------------------------

parent = Workflow("Guardian")
child = Workflow("Ward")


@parent.start()
async def guardian_start(ctx: Context, mode: str) -> Directive:
    await ctx.start_child("Ward", f"{ctx.run.wf_id}-child", {"mode": mode}, on_completed_step=on_child)
    return ctx.next.wait()


@parent.step()
async def on_child(ctx: Context, outcome: ChildOutcome) -> Directive:
    error = outcome.error
    return ctx.next.complete({"status": str(outcome.status), "result": outcome.result,
                              "type": error.type if error else None,
                              "message": error.message if error else None})


@child.start(timeout=timedelta(seconds=60))
async def ward_start(ctx: Context, mode: str) -> Directive:
    if mode == "fail":
        raise RuntimeError("child boom")
    if mode == "wait":
        return ctx.next.wait()
    if mode == "hold":
        await held(ctx)
        return ctx.next.complete("held")
    if mode == "long":
        await sleep_until_stopped(ctx)
    return ctx.next.complete("child-result")


WORKFLOWS = [inbox, timed, long_wf, parent, child]
