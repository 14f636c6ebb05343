"""Worker lifecycle against a real nats-server (and engine): readiness, stop semantics, refusal to
start, malformed tasks, the command subject."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError
from support.sdk import wait_for, workers
from ulid import ULID

from grctl import settings
from grctl.client.client import Client
from grctl.models import Directive
from grctl.models.command import Command, CommandKind, WorkerTerminateRunCmd, encode_command
from grctl.models.common import RunInfo, utcnow
from grctl.models.directive import Cancel, DirectiveKind, encode_directive
from grctl.nats import jetstream, subjects
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.worker.errors import RegistrationError, WorkerConsumerError
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)

FIRST_RUN_SLOW: dict[str, bool] = {}

wf = Workflow("Life")


@wf.start()
async def start(ctx: Context, seconds: float = 0.0) -> Directive:
    if seconds and FIRST_RUN_SLOW.setdefault(ctx.run.wf_id, True):
        FIRST_RUN_SLOW[ctx.run.wf_id] = False  # only the first execution is slow
        await asyncio.sleep(seconds)
    return ctx.next.complete(seconds)


@pytest.fixture
async def new_connection(nats_url: str) -> AsyncIterator[Any]:
    opened: list[Connection] = []

    async def open_one() -> Connection:
        conn = await Connection.connect([nats_url])
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        await conn.close()


async def test_stop_is_idempotent_and_safe_before_start(new_connection: Any) -> None:
    conn = await new_connection()
    worker = Worker([wf], conn)
    await worker.stop()
    await worker.stop(shutdown_timeout=1)
    assert conn.is_closed
    await asyncio.wait_for(worker.start(), 1)  # returns at once: already stopped
    with pytest.raises(RuntimeError, match="stopped before it became ready"):
        await worker.wait_ready(1)


async def test_worker_identity(new_connection: Any) -> None:
    a = Worker([wf, Workflow("Other")], await new_connection())
    b = Worker([Workflow("Other"), wf], await new_connection())
    assert a.worker_name == b.worker_name and len(a.worker_name) == 7 and a.worker_name.startswith("w_")
    assert a.worker_id != b.worker_id
    host = a.worker_id.rsplit("@", 1)[1]
    assert re.fullmatch(rf"{a.worker_name}\.[0-9a-f]+@{re.escape(host)}", a.worker_id)


async def _running(worker: Worker) -> bool:
    return worker.running_steps == 1


async def test_graceful_stop_finishes_short_steps_and_cancels_long_ones(
        engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    conn = await Connection.connect([nats_url])
    worker = Worker([wf], conn)
    runner = asyncio.create_task(worker.start())
    await worker.wait_ready(10)
    short = await client.start_workflow("Life", f"short-{ULID()}", {"seconds": 2.0})
    await wait_for(lambda: _running(worker), 10)
    t0 = time.monotonic()
    await worker.stop(shutdown_timeout=10)
    assert 1.0 < time.monotonic() - t0 < 5
    assert await short.result(timeout=5) == 2.0
    await asyncio.wait_for(runner, 1)
    assert conn.is_closed

    conn = await Connection.connect([nats_url])
    worker = Worker([wf], conn)
    runner = asyncio.create_task(worker.start())
    await worker.wait_ready(10)
    long = await client.start_workflow("Life", f"long-{ULID()}", {"seconds": 30.0})
    await wait_for(lambda: _running(worker), 10)
    t0 = time.monotonic()
    await asyncio.gather(worker.stop(shutdown_timeout=0.5), worker.stop(shutdown_timeout=0.5))
    assert time.monotonic() - t0 < 3
    await asyncio.wait_for(runner, 1)
    assert not long.future.done()  # cancelled, not reported
    async with workers(nats_url) as start_worker:  # the NAKed task goes to the next worker at once
        await start_worker(wf)
        assert await long.result(timeout=5) == 30.0


async def test_registration_failure_means_no_consuming(nats_url: str, new_connection: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "REGISTER_BACKOFF", 0.01)
    conn = await new_connection()
    await jetstream.ensure_stream(conn.js)  # a stream but no engine: nobody answers registration
    worker = Worker([wf], conn)
    with pytest.raises(RegistrationError, match="5 attempts"):
        await worker.start()
    with pytest.raises(RuntimeError, match="failed to start"):
        await worker.wait_ready(1)
    with pytest.raises(NotFoundError):
        await conn.js.consumer_info(subjects.STREAM, subjects.worker_consumer("Life"))


async def test_push_consumer_of_an_older_sdk_is_refused(engine: Any, new_connection: Any) -> None:
    conn = await new_connection()
    await conn.js.add_consumer(subjects.STREAM, ConsumerConfig(
        durable_name="grctl_worker_Life", deliver_subject="old-sdk-inbox", deliver_group="grctl_worker_Life",
        filter_subject="grctl_worker_task.Life.>"))
    worker = Worker([wf], await new_connection())
    with pytest.raises(WorkerConsumerError, match=r"push consumer.*older grctl SDK"):
        await worker.start()


async def test_malformed_tasks_are_dropped_and_commands_answered(
        engine: Any, connection: Connection, nats_url: str) -> None:
    async with workers(nats_url) as start_worker:
        worker = await start_worker(wf)
        nc = connection.nc
        await jetstream.publish(nc, subjects.worker_task("Life", "bad", "R1"), b"\xc1 not msgpack")
        not_a_task = Directive(id="X", timestamp=utcnow(), kind=DirectiveKind.cancel,
                               run_info=RunInfo(id="R2", wf_id="bad2", wf_type="Life"), msg=Cancel())
        await jetstream.publish(nc, subjects.worker_task("Life", "bad2", "R2"), encode_directive(not_a_task))
        client = Client(connection)
        assert await client.run_workflow("Life", f"ok-{ULID()}", timeout=10) == 0.0
        info = await connection.js.consumer_info(subjects.STREAM, subjects.worker_consumer("Life"))
        assert info.num_ack_pending == 0 and info.num_redelivered == 0

        cmd = Command(id="c1", kind=CommandKind.worker_terminate_run, timestamp=utcnow(),
                      msg=WorkerTerminateRunCmd(run_id="not-here"), sender_id="s:test:1")
        reply = await nc.request(subjects.worker_cmd(worker.worker_id), encode_command(cmd), timeout=2)
        assert msgspec.msgpack.decode(reply.data) == {"success": False}
        reply = await nc.request(subjects.worker_cmd(worker.worker_id), b"garbage", timeout=2)
        assert msgspec.msgpack.decode(reply.data) == {"success": False}
        assert worker.terminate_run("not-here") is False
