"""Workflows of the least-privilege tests: one run of ``Order`` uses every part of the model a worker's
credential must allow (a child of another type, an event sent to the parent, the store, a durable
sleep, a wait timer, a task that is retried); ``Hold`` waits until an operator ends it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from grctl.models import Directive
from grctl.models.directive import RetryPolicy
from grctl.worker import ChildOutcome
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

order = Workflow("Order")
part = Workflow("Part")
hold = Workflow("Hold")
busy = Workflow("Busy")
TYPES = ["Order", "Part", "Hold", "Busy"]

_attempts: Counter[str] = Counter()


@task(retry_policy=RetryPolicy(max_attempts=3, initial_delay_ms=10))
async def flaky(wf_id: str) -> int:
    """Fails its first attempt: the retry is part of what a worker must be allowed to record."""
    _attempts[wf_id] += 1
    if _attempts[wf_id] == 1:
        raise RuntimeError("first attempt fails")
    return _attempts[wf_id]


@order.start(timeout=timedelta(seconds=120))
async def order_start(ctx: Context, n: int) -> Directive:
    ctx.store.put("n", n)
    await ctx.start_child("Part", f"{ctx.run.wf_id}-part", {"n": n}, on_completed_step=on_part)
    return ctx.next.wait()


@order.event()
async def hello(ctx: Context, text: str) -> Directive:
    ctx.store.put("hello", text)
    return ctx.next.wait()


@order.step()
async def on_part(ctx: Context, outcome: ChildOutcome) -> Directive:
    ctx.store.put("part", outcome.result)
    return ctx.next.wait(timeout=timedelta(milliseconds=200), on_timeout=timed_out)


@order.step()
async def timed_out(ctx: Context) -> Directive:
    attempts = await flaky(ctx.run.wf_id)
    result: dict[str, Any] = {"n": await ctx.store.get("n"), "part": await ctx.store.get("part"),
                              "hello": await ctx.store.get("hello"), "attempts": attempts}
    return ctx.next.complete(result)


@part.start(timeout=timedelta(seconds=120))
async def part_start(ctx: Context, n: int) -> Directive:
    await ctx.send_to_parent("hello", {"text": f"part of {ctx.run.parent_wf_id}"})
    await ctx.sleep(timedelta(milliseconds=100))
    return ctx.next.complete(n * 2)


@hold.start(timeout=timedelta(seconds=120))
async def hold_start(ctx: Context) -> Directive:
    return ctx.next.wait()


@hold.event()
async def finish(ctx: Context, result: str) -> Directive:
    return ctx.next.complete(result)


@busy.start(timeout=timedelta(seconds=120))
async def busy_start(ctx: Context) -> Directive:
    """A step that runs until the engine asks the worker to stop it (a terminate)."""
    await asyncio.sleep(120)
    return ctx.next.complete("not stopped")


WORKFLOWS = [order, part, hold, busy]
