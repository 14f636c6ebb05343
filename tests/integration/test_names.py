"""Names that would break NATS subjects ('.', '*', '>', white space, empty, longer than 255 bytes) are
refused with a clear error wherever they enter: the client's calls, the store, children and events
inside a step, the engine's API (4006) and directives written straight to the stream; after each, the
engine still serves a normal workflow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from support.sdk import wait_history, workers

from grctl.client.client import Client
from grctl.models import (
    APIResponse,
    Cancel,
    CancelCmd,
    Command,
    CommandKind,
    DescribeCmd,
    Directive,
    DirectiveKind,
    EventCmd,
    RegisterCmd,
    RunInfo,
    StartCmd,
    TerminateCmd,
    WorkflowTypeDef,
    decode_response,
    encode_command,
    encode_directive,
    utcnow,
)
from grctl.models.command import ERR_INVALID_NAME
from grctl.models.errors import WorkflowError
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.jetstream import publish
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


LONG = "x" * 5000
TOO_LONG = "must be at most 255 bytes long"


async def test_the_client_refuses_names_longer_than_a_subject_allows(client: Client) -> None:
    handle = await client.start_workflow("Named", "named-long-ok", {"what": "wait"})
    calls = {
        "workflow id": lambda: client.start_workflow("Named", LONG),
        "workflow type": lambda: client.start_workflow("T" * 256, "named-2"),
        "event name": lambda: handle.send("e" * 256),
        "run id": lambda: client.get_history("named-long-ok", run_id="r" * 300),
    }
    for what, call in calls.items():
        with pytest.raises(ValueError, match=TOO_LONG) as raised:
            await call()
        assert what in str(raised.value)
    assert await client.run_workflow("Named", "x" * 255, {"what": "ok"}, timeout=20) == "ok"  # at the limit


async def raw(connection: Connection, subject: str, kind: CommandKind, msg: Any) -> APIResponse:
    """A command straight to the engine, past every check of our client."""
    cmd = Command(id="raw-1", kind=kind, timestamp=utcnow(), msg=msg, sender_id="c:raw")
    reply = await connection.nc.request(subject, encode_command(cmd), timeout=5)
    return decode_response(reply.data)


async def test_the_engine_refuses_long_names_and_keeps_answering(client: Client,
                                                                 connection: Connection) -> None:
    """Any subject the engine built from a 5000-byte name would make the server drop the engine's
    connection (its protocol lines are limited to 4096 bytes): it refuses such names first."""
    await client.run_workflow("Named", "named-before", {"what": "ok"}, timeout=20)
    api = subjects.api_workflow("named-raw")  # the command's content decides, not the subject
    ri = RunInfo(id="r1", wf_id="named-raw", wf_type="Named")

    def start(**names: str) -> StartCmd:
        return StartCmd(run_info=msgspec.structs.replace(ri, **names))

    refused = {
        "workflow id": (CommandKind.run_start, start(wf_id=LONG)),
        "workflow type": (CommandKind.run_start, start(wf_type=LONG)),
        "run id": (CommandKind.run_start, start(id=LONG)),
        "describe": (CommandKind.run_describe, DescribeCmd(wf_id=LONG)),
        "event name": (CommandKind.run_event, EventCmd(wf_id="named-raw", event_name=LONG)),
        "cancel": (CommandKind.run_cancel, CancelCmd(wf_id=LONG)),
        "terminate": (CommandKind.run_terminate, TerminateCmd(wf_id=LONG)),
    }
    for what, (kind, msg) in refused.items():
        response = await raw(connection, api, kind, msg)
        assert response.error is not None, what
        assert (response.error.code, TOO_LONG in response.error.detail) == (ERR_INVALID_NAME, True), what
    registration = RegisterCmd(worker_id="w" * 600, types=[WorkflowTypeDef(type="Named")])
    response = await raw(connection, subjects.API_WORKER, CommandKind.worker_register, registration)
    assert response.error is not None and response.error.code == ERR_INVALID_NAME
    assert await client.run_workflow("Named", "named-after", {"what": "ok"}, timeout=20) == "ok"


async def test_a_directive_with_unusable_names_is_dropped(client: Client, connection: Connection) -> None:
    """Directives published straight to the stream, past the API: dropped with a warning, never turned
    into subjects; the engine goes on."""
    bad_run = RunInfo(id=LONG, wf_id="named-d", wf_type="Named")
    for d in (Directive(id="d-long-run", timestamp=utcnow(), kind=DirectiveKind.cancel, run_info=bad_run,
                        msg=Cancel(reason="x")),
              Directive(id="i" * 2000, timestamp=utcnow(), kind=DirectiveKind.cancel,
                        run_info=RunInfo(id="r1", wf_id="named-d", wf_type="Named"), msg=Cancel())):
        await publish(connection.nc, subjects.directive("Named", "named-d", "r1"), encode_directive(d))
    assert await client.run_workflow("Named", "named-after-directives", {"what": "ok"}, timeout=20) == "ok"
