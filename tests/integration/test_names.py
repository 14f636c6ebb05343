"""Names that would break NATS subjects ('.', '*', '>', white space, empty) are refused with a clear
error wherever they enter: the client's calls, and the store, children and events inside a step (the
engine's own 4006 refusals are in test_engine_api)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.sdk import wait_history, workers

from grctl.client.client import Client
from grctl.models import Directive
from grctl.models.errors import WorkflowError
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)

BAD = "must not contain '.', '*', '>' or white space"

named = Workflow("Named")


@named.start()
async def named_start(ctx: Context, what: str) -> Directive:
    if what == "store":
        ctx.store.put("a.b", 1)
    elif what == "child_id":
        await ctx.start_child("Named", "child id", {"what": "ok"})
    elif what == "child_type":
        await ctx.start_child("No>Type", "child-1")
    elif what == "parent_event":
        await ctx.send_to_parent("bad event", 1)
    elif what == "wait":
        return ctx.next.wait()
    return ctx.next.complete("ok")


@pytest.fixture
async def client(engine: Any, connection: Connection, nats_url: str) -> AsyncIterator[Client]:
    async with workers(nats_url) as start_worker:
        await start_worker(named)
        yield Client(connection)


async def test_the_client_refuses_bad_names_before_sending(client: Client) -> None:
    handle = await client.start_workflow("Named", "named-ok", {"what": "wait"})
    await wait_history(client, "named-ok", "wait.started")
    calls = {
        "workflow id 'a.b'": lambda: client.start_workflow("Named", "a.b"),
        "workflow type 'Na med'": lambda: client.start_workflow("Na med", "named-1"),
        "workflow id 'x y'": lambda: client.describe("x y"),
        "workflow id 'a*'": lambda: client.get_workflow_handle("a*"),
        "workflow id 'a>'": lambda: client.get_history("a>"),
        "run id 'r.1'": lambda: client.get_history("named-ok", run_id="r.1"),
        "event name 'a>b'": lambda: handle.send("a>b"),
        "workflow id ''": lambda: client.describe(""),
    }
    for message, call in calls.items():
        with pytest.raises(ValueError, match="must not") as raised:
            await call()
        assert message in str(raised.value)
    assert str((await client.describe("named-ok")).status) == "running"  # nothing reached the run
    assert [str(e.kind) for e in await client.get_history("named-ok")][-1] == "wait.started"


async def test_a_step_using_a_bad_name_fails_with_a_clear_error(client: Client) -> None:
    expected = {
        "store": f"ValueError: store key 'a.b' {BAD}",
        "child_id": f"ValueError: workflow id 'child id' {BAD}",
        "child_type": f"ValueError: workflow type 'No>Type' {BAD}",
        "parent_event": f"ValueError: event name 'bad event' {BAD}",
    }

    async def outcome(what: str) -> str:
        try:
            return await client.run_workflow("Named", f"named-{what.replace('_', '-')}", {"what": what},
                                             timeout=10)
        except WorkflowError as exc:
            return str(exc)

    got = await asyncio.gather(*(outcome(what) for what in expected))
    assert dict(zip(expected, got, strict=True)) == expected
