"""``retry``: a failed, timed-out or terminated run resumes on fixed code as a new run of its workflow
id, at the step it ended in, with its input and its store as they were when that step started; runs
that have not ended are refused; of concurrent retries one resumes the run. Real engine, nats-server
and workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import pytest
from support.sdk import kinds, step_kinds, wait_for, workers

from grctl.client.client import Client
from grctl.models.command import CommandKind
from grctl.models.common import RunStatus
from grctl.models.directive import Directive
from grctl.models.errors import WorkflowAlreadyRunningError, WorkflowNotFoundError, WorkflowNotRetryableError
from grctl.models.history import HistoryKind, RunStarted
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.worker.store import StoreKeyNotFoundError
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(90)


def payment(ran: Counter[str], fixed: bool, charge_sleep: float = 0.0) -> Workflow:
    """start → reserve (writes the store) → charge (a bug before the fix) → complete."""
    wf = Workflow("Payment")

    @wf.start()
    async def start(ctx: Context, order_id: str) -> Directive:
        ran["start"] += 1
        return ctx.next.step(reserve)

    @wf.step()
    async def reserve(ctx: Context) -> Directive:
        ran["reserve"] += 1
        ctx.store.put("reserved", "yes")
        return ctx.next.step(charge)

    @wf.step(timeout=30)
    async def charge(ctx: Context) -> Directive:
        ran["charge"] += 1
        try:
            attempt = await ctx.store.get("attempt", int)
        except StoreKeyNotFoundError:  # the first attempt, or one whose failed write was never applied
            attempt = 0
        ctx.store.put("attempt", attempt + 1)
        await asyncio.sleep(charge_sleep)
        if not fixed:
            raise ZeroDivisionError("the bug")
        return ctx.next.complete({"order": ctx.run.wf_id, "reserved": await ctx.store.get("reserved"),
                                  "attempt": await ctx.store.get("attempt")})

    return wf


async def status_is(client: Client, wf_id: str, status: RunStatus) -> bool:
    return (await client.describe(wf_id)).status == status


async def test_a_failed_run_resumes_at_its_failed_step_after_the_fix(
        engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    ran: Counter[str] = Counter()
    async with workers(nats_url) as start_worker:
        buggy = await start_worker(payment(ran, fixed=False))
        failed = await client.start_workflow("Payment", "pay-1", {"order_id": "A-1"})
        await wait_for(lambda: status_is(client, "pay-1", RunStatus.failed), timeout=20)
        await buggy.stop(shutdown_timeout=1)
        await start_worker(payment(ran, fixed=True))
        new = await client.retry_run("pay-1")
        assert new.retry_of == failed.run_id and new.id != failed.run_id
        result = await (await client.get_workflow_handle("pay-1")).result(timeout=30)
    # the input, and the store as it was when charge started: its failed write is not there
    assert result == {"order": "pay-1", "reserved": "yes", "attempt": 1}
    assert (ran["start"], ran["reserve"], ran["charge"]) == (1, 1, 2)
    old = await client.get_history("pay-1", failed.run_id)
    assert kinds(old, "run.")[-1] == HistoryKind.run_failed
    history = await client.get_history("pay-1")
    started = history[0].msg
    assert isinstance(started, RunStarted)
    assert (started.retry_of, started.resumed_at, started.input) == (failed.run_id, "charge",
                                                                     {"order_id": "A-1"})
    assert step_kinds(history)[0] == ("step.started", "charge")
    listed = {r.id: r for r in await client.list_runs(type="Payment")}
    assert listed[failed.run_id].retried_as == new.id and listed[new.id].retry_of == failed.run_id
    with pytest.raises(WorkflowNotRetryableError):  # completed now
        await client.retry_run("pay-1")


async def test_timed_out_and_terminated_runs_resume(
        engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    ran: Counter[str] = Counter()
    waits = Workflow("Waits")

    @waits.start()
    async def start(ctx: Context) -> Directive:
        return ctx.next.wait(timeout=60)

    @waits.event(name="go")
    async def go(ctx: Context) -> Directive:
        return ctx.next.complete("went")

    async with workers(nats_url) as start_worker:
        slow = await start_worker(payment(ran, fixed=True, charge_sleep=8), waits)
        await client.start_workflow("Payment", "pay-slow", {"order_id": "S"}, timeout=3)
        await client.start_workflow("Waits", "waits-1")
        await wait_for(lambda: _has(client, "waits-1", "wait.started"), timeout=15)
        with pytest.raises(WorkflowNotRetryableError, match="running"):  # not ended: a clear error
            await client.retry_run("waits-1")
        await (await client.get_workflow_handle("waits-1")).terminate("operator")
        await wait_for(lambda: status_is(client, "pay-slow", RunStatus.timed_out), timeout=20)
        await wait_for(lambda: status_is(client, "waits-1", RunStatus.terminated), timeout=20)
        await slow.stop(shutdown_timeout=1)
        await start_worker(payment(ran, fixed=True), waits)
        await client.retry_run("pay-slow")
        resumed = await client.retry_run("waits-1")
        assert (await client.get_workflow_handle("pay-slow")).run_id != resumed.id
        assert (await (await client.get_workflow_handle("pay-slow")).result(timeout=30))["reserved"] == "yes"
        await wait_for(lambda: _has(client, "waits-1", "wait.started"), timeout=15)  # back in its wait
        handle = await client.get_workflow_handle("waits-1")
        await handle.send("go")
        assert await handle.result(timeout=30) == "went"


async def _has(client: Client, wf_id: str, kind: str) -> bool:
    return kind in kinds(await client.get_history(wf_id))


async def test_concurrent_retries_resume_the_run_once_and_bulk_retry_reports(
        engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    ran: Counter[str] = Counter()
    async with workers(nats_url) as start_worker:
        buggy = await start_worker(payment(ran, fixed=False))
        for n in range(4):
            await client.start_workflow("Payment", f"bulk-{n}", {"order_id": str(n)})
        for n in range(4):
            await wait_for(lambda n=n: status_is(client, f"bulk-{n}", RunStatus.failed), timeout=20)
        await buggy.stop(shutdown_timeout=1)
        await start_worker(payment(ran, fixed=True))
        failed = (await client.describe("bulk-0")).id
        tries = await asyncio.gather(*(client.retry_run("bulk-0", failed) for _ in range(5)),
                                     return_exceptions=True)
        resumed = [t for t in tries if not isinstance(t, BaseException)]
        assert len(resumed) == 1
        assert all(isinstance(t, WorkflowAlreadyRunningError) for t in tries if isinstance(t, BaseException))
        # bulk-3 was started afresh after it failed: its failed run is no longer the latest, and is left.
        assert await (await client.start_workflow("Payment", "bulk-3", {"order_id": "3"})).result(timeout=30)
        outcomes = await client.retry_runs(status="failed", type="Payment")
        assert sorted(o.run.wf_id for o in outcomes) == ["bulk-1", "bulk-2"], outcomes
        assert all(o.retried_as for o in outcomes), outcomes  # nothing refused
        for n in range(3):
            assert (await (await client.get_workflow_handle(f"bulk-{n}")).result(timeout=30))["attempt"] == 1
    runs = await client.list_runs(type="Payment")
    assert sorted(r.status for r in runs if r.wf_id == "bulk-0") == [RunStatus.completed, RunStatus.failed]


async def test_concurrent_retries_through_two_engines_resume_the_run_once(
        engine: Any, engine_process: Any, connection: Connection, nats_url: str) -> None:
    """Two engines share the API: retries of one run reach both at once, and the compare-and-swap on
    the run's latest-run pointer (not one engine's per-id queue) lets one of them through."""
    client = Client(connection)
    ran: Counter[str] = Counter()
    handled_here = 0
    retry = engine.api._handlers[CommandKind.run_retry]  # the in-process engine's handler, counted

    async def counted(cmd: Any) -> Any:
        nonlocal handled_here
        handled_here += 1
        return await retry(cmd)

    engine.api.serve(CommandKind.run_retry, counted)
    # The engine process counts as ready once any engine answers, this one included: wait until it
    # takes requests too (a describe that this engine did not answer).
    describe = engine.api._handlers[CommandKind.run_describe]
    described_here = 0

    async def counted_describe(cmd: Any) -> Any:
        nonlocal described_here
        described_here += 1
        return await describe(cmd)

    engine.api.serve(CommandKind.run_describe, counted_describe)

    async def other_engine_answers() -> bool:
        before = described_here
        with contextlib.suppress(WorkflowNotFoundError):
            await client.describe("no-such-run")
        return described_here == before

    await wait_for(other_engine_answers, timeout=20, interval=0.05)
    async with workers(nats_url) as start_worker:
        buggy = await start_worker(payment(ran, fixed=False))
        await client.start_workflow("Payment", "two-engines", {"order_id": "2e"})
        await wait_for(lambda: status_is(client, "two-engines", RunStatus.failed), timeout=20)
        await buggy.stop(shutdown_timeout=1)
        await start_worker(payment(ran, fixed=True))
        failed = (await client.describe("two-engines")).id  # named: a late retry must not see the new run
        tries = await asyncio.gather(*(client.retry_run("two-engines", failed) for _ in range(24)),
                                     return_exceptions=True)
        assert 0 < handled_here < len(tries), handled_here  # both engines answered some of them
        resumed = [t for t in tries if not isinstance(t, BaseException)]
        assert len(resumed) == 1, tries
        refused = [t for t in tries if isinstance(t, BaseException)]
        assert all(isinstance(t, WorkflowAlreadyRunningError) for t in refused), [
            repr(t) for t in refused if not isinstance(t, WorkflowAlreadyRunningError)]
        assert (await (await client.get_workflow_handle("two-engines")).result(timeout=30))["attempt"] == 1
    runs = await client.list_runs(type="Payment")
    statuses = sorted(r.status for r in runs if r.wf_id == "two-engines")
    assert statuses == [RunStatus.completed, RunStatus.failed]
