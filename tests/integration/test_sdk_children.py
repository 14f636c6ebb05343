"""Child workflows end to end (C34–C36 of docs/protocol.md#conformance-scenarios) and wait timeouts
(C18–C20)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from support.sdk import kinds, wait_history, workers
from ulid import ULID

from grctl.client.client import Client
from grctl.models import Directive
from grctl.models.errors import WorkflowError
from grctl.nats.connection import Connection
from grctl.worker import ChildOutcome
from grctl.worker.context import Context
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)


class Res(msgspec.Struct):
    text: str
    n: int


child = Workflow("Child")


@child.start(timeout=timedelta(milliseconds=500))
async def child_start(ctx: Context, mode: str) -> Directive:
    if mode == "fail":
        raise RuntimeError("child boom")
    if mode == "slow":
        await asyncio.sleep(30)
    if mode == "typed":
        return ctx.next.complete(Res(text="typed", n=2))
    if mode == "to_parent":
        await ctx.send_to_parent("result_ready", "child-result")
    return ctx.next.complete("child-result")


parent = Workflow("Parent")


@parent.start()
async def parent_start(ctx: Context, mode: str, style: str) -> Directive:
    child_id = f"{ctx.run.wf_id}-child"
    if style == "run":
        return ctx.next.complete(await ctx.run_child("Child", child_id, {"mode": mode}))
    if style == "callback_typed":
        await ctx.start_child("Child", child_id, {"mode": mode}, on_completed_step=on_typed)
        return ctx.next.wait()
    if style == "callback":
        await ctx.start_child("Child", child_id, {"mode": mode}, on_completed_step=on_done)
        return ctx.next.wait()
    await ctx.start_child("Child", child_id, {"mode": mode})
    return ctx.next.wait()


@parent.step()
async def on_done(ctx: Context, outcome: ChildOutcome) -> Directive:
    if outcome.ok:
        return ctx.next.complete(outcome.result)
    assert outcome.error is not None
    return ctx.next.complete({"status": str(outcome.status), "type": outcome.error.type,
                              "message": outcome.error.message})


@parent.step()
async def on_typed(ctx: Context, outcome: ChildOutcome[Res]) -> Directive:
    assert isinstance(outcome.result, Res)
    return ctx.next.complete([outcome.result.text, outcome.result.n])


@parent.event()
async def result_ready(ctx: Context, payload: str) -> Directive:
    return ctx.next.complete(payload)


@pytest.fixture
async def client(engine: Any, connection: Connection, nats_url: str) -> AsyncIterator[Client]:
    async with workers(nats_url) as start_worker:
        await start_worker(parent, child)
        yield Client(connection)


async def run_parent(client: Client, mode: str, style: str) -> tuple[str, Any]:
    wf_id = f"p-{ULID()}"
    try:
        return wf_id, await client.run_workflow("Parent", wf_id, {"mode": mode, "style": style}, timeout=15)
    except WorkflowError as exc:
        return wf_id, exc


async def test_c34_run_child(client: Client) -> None:
    wf_id, result = await run_parent(client, "ok", "run")
    assert result == "child-result"
    history = await client.get_history(wf_id)
    started = [e for e in history if str(e.kind) == "child.started"]
    assert len(started) == 1
    assert (started[0].msg.wf_type, started[0].msg.wf_id) == ("Child", f"{wf_id}-child")
    child_info = await client.describe(f"{wf_id}-child")
    parent_info = await client.describe(wf_id)
    assert child_info.id == started[0].msg.run_id
    assert (child_info.parent_wf_id, child_info.parent_wf_type, child_info.parent_run_id) == \
        (wf_id, "Parent", parent_info.id)

    _, failed = await run_parent(client, "fail", "run")
    assert isinstance(failed, WorkflowError) and "child boom" in str(failed)


async def test_c35_completion_callback(client: Client) -> None:
    wf_id, result = await run_parent(client, "ok", "callback")
    assert result == "child-result"
    received = [e for e in await client.get_history(wf_id) if str(e.kind) == "event.received"]
    assert received[0].msg.event_name == "on_done"
    assert received[0].msg.payload == {"status": "completed", "result": "child-result", "error": None}

    _, failed = await run_parent(client, "fail", "callback")
    assert failed["status"] == "failed" and "boom" in failed["message"]
    _, timed_out = await run_parent(client, "slow", "callback")
    assert timed_out["status"] == "failed" and timed_out["type"] == "StepTimeout"
    _, typed = await run_parent(client, "typed", "callback_typed")
    assert typed == ["typed", 2]


async def test_c36_send_to_parent(client: Client) -> None:
    wf_id, result = await run_parent(client, "to_parent", "plain")
    assert result == "child-result"
    child_history = await client.get_history(f"{wf_id}-child")
    sent = [e for e in child_history if str(e.kind) == "parent.event_sent"]
    assert len(sent) == 1 and sent[0].msg.parent_wf_id == wf_id and sent[0].msg.payload == "child-result"


async def test_send_to_parent_without_parent_fails_the_step(client: Client) -> None:
    with pytest.raises(WorkflowError, match="no parent"):
        await client.run_workflow("Child", f"c-{ULID()}", {"mode": "to_parent"}, timeout=10)


waits = Workflow("Waits")


@waits.start()
async def waits_start(ctx: Context, mode: str) -> Directive:
    if mode == "with_step":
        return ctx.next.wait(timeout=timedelta(milliseconds=100), on_timeout=on_timeout)
    if mode == "event":
        return ctx.next.wait()
    return ctx.next.wait(timeout=0.1)


@waits.step()
async def on_timeout(ctx: Context) -> Directive:
    return ctx.next.complete("timed_out")


@waits.event(timeout=timedelta(milliseconds=100))
async def finish(ctx: Context) -> Directive:
    await asyncio.sleep(1)
    return ctx.next.complete("late")


async def test_c18_to_c20_wait_and_event_timeouts(engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    async with workers(nats_url) as start_worker:
        await start_worker(waits)
        wf_id = f"w-{ULID()}"
        assert await client.run_workflow("Waits", wf_id, {"mode": "with_step"}, timeout=10) == "timed_out"
        history = await client.get_history(wf_id)
        wait_started = next(e for e in history if str(e.kind) == "wait.started")
        assert (wait_started.msg.timeout_ms, wait_started.msg.timeout_step_name) == (100, "on_timeout")
        assert "wait.timed_out" in kinds(history)
        with pytest.raises(WorkflowError, match="wait timed out without"):
            await client.run_workflow("Waits", f"w-{ULID()}", {"mode": "plain"}, timeout=10)
        handle = await client.start_workflow("Waits", f"w-{ULID()}", {"mode": "event"})
        await wait_history(client, handle.wf_id, "wait.started")
        await handle.send("finish")
        with pytest.raises(WorkflowError, match="step finish timed out"):  # C20: the handler's timeout
            await handle.result(timeout=10)
