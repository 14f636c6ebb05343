"""Workflows for the benchmarks: a one-step and a five-step workflow, and a one-step workflow whose
step calls one task (the overload benchmark's).

Only the public SDK's import paths are used, so its worker serves them too (bench_vs_public.py), under
type names that start with ``$BENCH_TYPE_PREFIX``."""

import os

from grctl.worker.task import task
from grctl.workflow import Workflow

PREFIX = os.environ.get("BENCH_TYPE_PREFIX", "")

one_step = Workflow(workflow_type=f"{PREFIX}BenchOne")
five_step = Workflow(workflow_type=f"{PREFIX}BenchFive")
with_task = Workflow(workflow_type=f"{PREFIX}BenchTask")


@task
async def echo(n: int) -> int:
    return n


@with_task.start()
async def task_start(ctx, n: int):
    return ctx.next.complete(await echo(n))


@one_step.start()
async def one_start(ctx, n: int):
    return ctx.next.complete(n)


@five_step.start()
async def five_start(ctx, n: int):
    ctx.store.put("n", n)
    return ctx.next.step(s2)


@five_step.step()
async def s2(ctx):
    return ctx.next.step(s3)


@five_step.step()
async def s3(ctx):
    return ctx.next.step(s4)


@five_step.step()
async def s4(ctx):
    return ctx.next.step(s5)


@five_step.step()
async def s5(ctx):
    return ctx.next.complete(await ctx.store.get("n"))


WORKFLOWS = [one_step, five_step, with_task]
