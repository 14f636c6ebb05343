"""A deploy never fails a run: every kind of mismatch between the code and a run (a renamed event
handler, a removed step, a removed ``on_timeout`` handler, parameters that no longer bind, a workflow
type no worker serves) leaves the run stuck, with its reason; a worker with fitting code then continues
it, and nothing runs twice. Real engine, real nats-server, real workers (in this process)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from support.sdk import kinds, step_kinds, wait_for, workers

from grctl.client.client import Client
from grctl.models.common import RunInfo, RunStatus
from grctl.models.directive import Directive
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(90)


def order_v1(ran: Counter[str]) -> Workflow:
    """The code the runs need: start, wait for ``approve`` (or time out), then ship."""
    wf = Workflow("Order")

    @wf.start()
    async def start(ctx: Context, order_id: str = "") -> Directive:
        ran["start"] += 1
        return ctx.next.wait(timeout=60, on_timeout="expired")

    @wf.event(name="approve")
    async def approve(ctx: Context, by: str = "") -> Directive:
        ran["approve"] += 1
        return ctx.next.step("ship")

    @wf.step()
    async def ship(ctx: Context) -> Directive:
        ran["ship"] += 1
        return ctx.next.complete("shipped")

    @wf.step()
    async def expired(ctx: Context) -> Directive:
        ran["expired"] += 1
        return ctx.next.complete("expired")

    return wf


def renamed_event(wf: Workflow) -> None:
    @wf.start()
    async def start(ctx: Context, order_id: str = "") -> Directive:
        return ctx.next.wait(timeout=60, on_timeout="expired")

    @wf.event(name="approved")
    async def approved(ctx: Context) -> Directive:
        return ctx.next.step("ship")


def removed_step(wf: Workflow) -> None:
    @wf.start()
    async def start(ctx: Context, order_id: str = "") -> Directive:
        return ctx.next.wait(timeout=60)

    @wf.event(name="approve")
    async def approve(ctx: Context) -> Directive:
        return ctx.next.step("ship")


def removed_on_timeout(wf: Workflow) -> None:
    @wf.start()
    async def start(ctx: Context, order_id: str = "") -> Directive:
        return ctx.next.wait(timeout=0.5, on_timeout="expired")


def unbound_parameters(wf: Workflow) -> None:
    @wf.start()
    async def start(ctx: Context, order_id: str = "") -> Directive:
        return ctx.next.wait(timeout=60)

    @wf.event(name="approve")
    async def approve(ctx: Context, by: str, amount: int) -> Directive:
        return ctx.next.step("ship")


# (how the deployed code differs, the handler the run is stuck at, its reason, the run's expected result)
CASES: dict[str, tuple[Callable[[Workflow], None], str, str, str]] = {
    "renamed event": (renamed_event, "approve", "missing_handler", "shipped"),
    "removed step": (removed_step, "ship", "missing_handler", "shipped"),
    "removed on_timeout": (removed_on_timeout, "expired", "missing_handler", "expired"),
    "parameters": (unbound_parameters, "approve", "unbound_parameters", "shipped"),
}


async def stuck_info(client: Client, wf_id: str, timeout: float = 20.0) -> RunInfo:
    found: list[RunInfo] = []

    async def stuck() -> bool:
        info = await client.describe(wf_id)
        found[:] = [info]
        return info.stuck is not None

    await wait_for(stuck, timeout=timeout, interval=0.2)
    return found[0]


@pytest.mark.parametrize("case", list(CASES))
async def test_a_mismatch_leaves_the_run_stuck_until_fitting_code_continues_it(
        case: str, engine: Any, connection: Connection, nats_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    change, handler, reason, result = CASES[case]
    client = Client(connection)
    ran: Counter[str] = Counter()
    new_code = Workflow("Order")
    change(new_code)
    async with workers(nats_url) as start_worker:
        deployed = await start_worker(new_code)
        wf_id = f"stuck-{case.replace(' ', '-')}"
        await client.start_workflow("Order", wf_id, {"order_id": "o1"})
        if handler == "approve" or case == "removed step":
            await wait_for(lambda: _waiting(client, wf_id), timeout=15)
            await (await client.get_workflow_handle(wf_id)).send("approve", {"by": "ops"})
        info = await stuck_info(client, wf_id)
        assert info.status == RunStatus.running and info.stuck is not None
        assert (info.stuck.reason, info.stuck.handler) == (reason, handler)
        assert info.stuck.worker_id == deployed.worker_id and info.stuck.detail
        await asyncio.sleep(2)  # handed back again meanwhile: still stuck, not failed
        again = await client.describe(wf_id)
        assert again.status == RunStatus.running and again.stuck == info.stuck
        assert "step.failed" not in kinds(await client.get_history(wf_id))
        # Handed back several times by now, yet one line from the worker and one from the engine.
        said = [r.getMessage() for r in caplog.records if wf_id in r.getMessage()]
        assert len([m for m in said if "is held, not failed" in m]) == 1, said
        assert len([m for m in said if " is stuck: " in m]) == 1, said

        await start_worker(order_v1(ran))  # the fix-forward deploy: fitting code, then the old goes
        await deployed.stop(shutdown_timeout=1)
        handle = await client.get_workflow_handle(wf_id)
        assert await handle.result(timeout=45) == result
    history = await client.get_history(wf_id)
    assert (await client.describe(wf_id)).stuck is None
    steps = step_kinds(history)
    assert steps.count(("step.started", handler)) == 1 and steps.count(("step.completed", handler)) == 1
    assert ran[handler] == 1  # the held step ran once, on the fitting code


async def _waiting(client: Client, wf_id: str) -> bool:
    return "wait.started" in kinds(await client.get_history(wf_id))


async def test_a_type_no_worker_serves_is_stuck_then_served(
        engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    ran: Counter[str] = Counter()
    registered = Workflow("Lonely")

    @registered.start(timeout=1)
    async def start(ctx: Context) -> Directive:
        ran["start"] += 1
        return ctx.next.complete("served")

    async with workers(nats_url) as start_worker:
        first = await start_worker(registered)
        await first.stop(shutdown_timeout=1)  # the type stays registered; no worker serves it now
        await client.start_workflow("Lonely", "lonely-1")
        info = await stuck_info(client, "lonely-1")
        assert info.stuck is not None and (info.stuck.reason, info.stuck.handler) == ("no_worker", "start")
        assert "Lonely" in info.stuck.detail
        await start_worker(registered)
        assert await (await client.get_workflow_handle("lonely-1")).result(timeout=30) == "served"
    assert ran["start"] == 1 and (await client.describe("lonely-1")).stuck is None


async def test_timeouts_keep_their_meaning_and_terminate_ends_a_stuck_run(
        engine: Any, connection: Connection, nats_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="grctl.worker")
    client = Client(connection)
    new_code = Workflow("Strict")

    @new_code.start(timeout=1)  # a step timeout of 1 s counts the time the step runs, not held time
    async def start(ctx: Context, order_id: str, amount: int) -> Directive:
        return ctx.next.complete(amount)

    async with workers(nats_url) as start_worker:
        await start_worker(new_code)
        await client.start_workflow("Strict", "strict-held", {"order_id": "o1"})
        await client.start_workflow("Strict", "strict-timed", {"order_id": "o2"}, timeout=3)
        await client.start_workflow("Strict", "strict-cancel", {"order_id": "o3"})
        assert (await stuck_info(client, "strict-held")).stuck is not None
        await stuck_info(client, "strict-cancel")
        await (await client.get_workflow_handle("strict-cancel")).cancel("no fix coming")  # at once: held
        await wait_for(lambda: _status(client, "strict-cancel", RunStatus.cancelled), timeout=15)
        await asyncio.sleep(2.5)  # past the step timeout: still stuck, not failed
        assert (await client.describe("strict-held")).status == RunStatus.running
        handle = await client.get_workflow_handle("strict-held")
        await handle.terminate("no fix coming")
        await wait_for(lambda: _status(client, "strict-held", RunStatus.terminated), timeout=15)

        async def dropped() -> bool:  # the held tasks of ended runs are dropped, not held for ever
            return caplog.text.count("the run has ended or moved on") >= 2

        await wait_for(dropped, timeout=45, interval=0.5)
        # the run's own timeout still ends a stuck run
        await wait_for(lambda: _status(client, "strict-timed", RunStatus.timed_out), timeout=20)
    assert (await client.describe("strict-held")).stuck is None


async def _status(client: Client, wf_id: str, status: RunStatus) -> bool:
    return (await client.describe(wf_id)).status == status
