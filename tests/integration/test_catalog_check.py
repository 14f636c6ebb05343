"""``catalog.check``: the engine says which handlers live runs need that a new catalog drops — the step
a run is at, the event and timeout handlers of a waiting run, a whole workflow type — and nothing when
the catalog keeps them. Real engine, nats-server and worker; the question grctld asks before a reload."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.sdk import kinds, wait_for, workers

from grctl.client.client import Client
from grctl.daemon.strand import stranded
from grctl.models.directive import Directive
from grctl.models.errors import WorkflowNotFoundError
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)


def order(release: asyncio.Event | None = None) -> Workflow:
    wf = Workflow("Order")

    @wf.start()
    async def start(ctx: Context, ship_now: bool = False) -> Directive:
        return ctx.next.step("ship") if ship_now else ctx.next.wait(timeout=60, on_timeout="expired")

    @wf.event(name="approve")
    async def approve(ctx: Context) -> Directive:
        return ctx.next.step("ship")

    @wf.step(timeout=30)
    async def ship(ctx: Context) -> Directive:
        if release is not None:
            await release.wait()
        return ctx.next.complete("shipped")

    @wf.step()
    async def expired(ctx: Context) -> Directive:
        return ctx.next.complete("expired")

    return wf


async def test_the_engine_names_what_live_runs_need(
        engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    release = asyncio.Event()
    async with workers(nats_url) as start_worker:
        await start_worker(order(release))
        await client.start_workflow("Order", "waiting-1")
        await client.start_workflow("Order", "shipping-1", {"ship_now": True})
        await wait_for(lambda: _has(client, "waiting-1", "wait.started"), timeout=15)
        await wait_for(lambda: _has(client, "shipping-1", "step.started", 2), timeout=15)

        bare = Workflow("Order")

        @bare.start()
        async def start(ctx: Context) -> Directive:
            return ctx.next.complete(None)

        needs = await stranded(connection, [bare], [], "test")
        assert needs is not None
        found = {(n.kind, n.handler): (n.count, n.runs) for n in needs}
        assert set(found) == {("event", "approve"), ("timeout", "expired"), ("step", "ship")}
        assert found[("step", "ship")][0] == 1 and found[("step", "ship")][1][0].startswith("shipping-1/")
        assert found[("event", "approve")][1][0].startswith("waiting-1/")
        assert await stranded(connection, [order()], ["Order"], "test") == []  # the same code: nothing
        dropped = await stranded(connection, [], ["Order"], "test")
        assert dropped is not None
        assert [(n.kind, n.handler, n.count) for n in dropped] == [("type", "Order", 2)]
        release.set()
        assert await (await client.get_workflow_handle("shipping-1")).result(timeout=20) == "shipped"


async def _has(client: Client, wf_id: str, kind: str, times: int = 1) -> bool:
    return kinds(await client.get_history(wf_id)).count(kind) >= times


async def test_a_parent_needs_the_callback_step_its_live_child_will_report_to(
        engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    batch, item = Workflow("Batch"), Workflow("Item")

    @batch.start()
    async def batch_start(ctx: Context) -> Directive:
        await ctx.start_child("Item", f"{ctx.run.wf_id}-item", on_completed_step=collected)
        return ctx.next.wait(timeout=60)

    @batch.step()
    async def collected(ctx: Context, outcome: Any = None) -> Directive:
        return ctx.next.complete("collected")

    @item.start()
    async def item_start(ctx: Context) -> Directive:
        return ctx.next.wait(timeout=60)  # stays live until the test sends it "done"

    @item.event(name="done")
    async def done(ctx: Context) -> Directive:
        return ctx.next.complete("ok")

    async with workers(nats_url) as start_worker:
        await start_worker(batch, item)
        await client.start_workflow("Batch", "batch-1")

        async def child_waits() -> bool:
            try:
                return await _has(client, "batch-1-item", "wait.started")
            except WorkflowNotFoundError:  # not started yet
                return False

        await wait_for(child_waits, timeout=15)

        without = Workflow("Batch")

        @without.start()
        async def start(ctx: Context) -> Directive:
            return ctx.next.wait(timeout=60)

        needs = await stranded(connection, [without], [], "test")
        assert needs is not None
        assert [(n.wf_type, n.kind, n.handler, n.count) for n in needs] == [("Batch", "step", "collected", 1)]
        assert needs[0].runs[0].startswith("batch-1/")  # the parent is named, not the child
        assert await stranded(connection, [batch], [], "test") == []
