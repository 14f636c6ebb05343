"""The public SDK's client and worker API on a real engine and nats-server: ``handle.future`` as a
``WorkflowFuture``, ``get_handle(workflow_id=...)``, ``Worker.wait_until_ready``, ``Connection.reset``,
a run started on a worker's connection before that worker has registered, and ``handle.send`` to a
finished run (which raises here, on purpose)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from support.sdk import workers
from ulid import ULID

from grctl import settings
from grctl.client import Client, Connection, WorkflowError, WorkflowRunFinishedError
from grctl.models import Directive
from grctl.nats import jetstream
from grctl.worker import Context, Worker
from grctl.worker.errors import RegistrationError
from grctl.workflow import Workflow, WorkflowFuture

pytestmark = pytest.mark.timeout(60)

waiting = Workflow("FutureWait")


@waiting.start()
async def start(ctx: Context) -> Directive:
    return ctx.next.wait()


@waiting.event()
async def finish(ctx: Context, value: int) -> Directive:
    return ctx.next.complete(value)


@waiting.event()
async def boom(ctx: Context) -> Directive:
    raise ValueError("boom")


@pytest.fixture
async def client(engine: Any, nats_url: str, connection: Connection) -> AsyncIterator[Client]:
    async with workers(nats_url) as start_worker:
        await start_worker(waiting)
        yield Client(connection)


async def started(client: Client) -> Any:
    return await client.start_workflow(type="FutureWait", id=f"fw-{ULID()}")


async def test_the_future_is_an_asyncio_future_of_the_result(client: Client) -> None:
    handle = await started(client)
    future = handle.future
    assert isinstance(future, WorkflowFuture) and isinstance(future, asyncio.Future)
    assert handle.future is future and future.run_info.wf_id == handle.wf_id
    await handle.send("finish", {"value": 7})
    assert await asyncio.wait_for(future, timeout=10) == 7
    assert await handle.result() == 7


async def test_a_wait_for_timeout_cancels_the_future_not_the_run(client: Client) -> None:
    handle = await started(client)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(handle.future, timeout=0.3)
    assert handle.future.cancelled() and handle.watcher.future.cancelled()
    await handle.send("finish", {"value": 3})
    again = await client.get_handle(workflow_id=handle.wf_id)
    assert await asyncio.wait_for(again.future, timeout=10) == 3


async def test_the_public_handle_names(client: Client) -> None:
    """``get_workflow_handle(wfid=...)`` and ``attach()`` as the public SDK has them; ``query`` and
    ``update`` raise ``NotImplementedError`` there and here."""
    handle = await started(client)
    same = await client.get_workflow_handle(wfid=handle.wf_id)
    assert same.run_id == handle.run_id
    with pytest.raises(TypeError):
        await client.get_workflow_handle()
    await same.attach()
    await same.attach()  # already listening: harmless
    with pytest.raises(NotImplementedError):
        await same.query("state")
    with pytest.raises(NotImplementedError):
        await same.update("state", {"x": 1})
    await handle.send("finish", {"value": 5})
    assert await asyncio.wait_for(same.future, timeout=10) == 5


async def test_stop_stops_listening_and_cancels_a_pending_future(client: Client) -> None:
    handle = await started(client)
    await handle.future.stop()
    assert handle.future.cancelled() and handle.watcher.future.cancelled()
    await handle.future.stop()  # again: nothing left to do


async def test_failure_and_discard(client: Client) -> None:
    handle = await started(client)
    await handle.send("boom")
    with pytest.raises(WorkflowError, match="ValueError: boom"):
        await asyncio.wait_for(handle.future, timeout=10)
    await handle.future.discard()
    assert isinstance(handle.future.exception(), WorkflowError)


async def test_cancel_makes_the_future_raise_cancelled_error(client: Client) -> None:
    handle = await started(client)
    await handle.cancel(reason="no longer needed")
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(handle.future, timeout=10)
    with pytest.raises(WorkflowError):  # documented: cancelling a finished run raises
        await handle.cancel()


async def test_send_to_a_finished_run_raises(client: Client) -> None:
    handle = await started(client)
    await handle.send("finish", {"value": 1})
    assert await handle.future == 1
    with pytest.raises(WorkflowRunFinishedError):
        await handle.send("finish", {"value": 2})


async def test_a_run_started_before_the_worker_on_its_connection_has_registered(engine: Any,
                                                                                nats_url: str) -> None:
    """As the public examples do: the worker task is created, and a run of its type is started at once
    on the same connection. The start waits for that worker's registration instead of being refused."""
    connection = await Connection.connect([nats_url])
    quick = Workflow(f"Quick{ULID()}")

    @quick.start()
    async def begin(ctx: Context, name: str) -> Directive:
        return ctx.next.complete(f"hi {name}")

    worker = Worker(workflows=[quick], connection=connection)
    runner = asyncio.create_task(worker.start())
    try:
        result = await Client(connection).run_workflow(type=quick.workflow_type, id=f"q-{ULID()}",
                                                       input={"name": "Ada"}, timeout=timedelta(seconds=10))
        assert result == "hi Ada"
    finally:
        await worker.stop()
        await asyncio.gather(runner, return_exceptions=True)


async def test_wait_until_ready(engine: Any, nats_url: str) -> None:
    worker = Worker(workflows=[waiting], connection=await Connection.connect([nats_url]))
    runner = asyncio.create_task(worker.start())
    try:
        await worker.wait_until_ready()
        assert worker.ready.is_set()
    finally:
        await worker.stop()
        await asyncio.gather(runner, return_exceptions=True)


async def test_wait_until_ready_raises_the_startup_error_itself(nats_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "REGISTER_BACKOFF", 0.01)
    connection = await Connection.connect([nats_url])
    await jetstream.ensure_stream(connection.js)  # a stream but no engine: nobody answers registration
    worker = Worker(workflows=[waiting], connection=connection)
    runner = asyncio.create_task(worker.start())
    try:
        with pytest.raises(RegistrationError, match="5 attempts"):
            await worker.wait_until_ready(timeout_ms=10)  # seconds, as in the public SDK
    finally:
        await worker.stop()
        await asyncio.gather(runner, return_exceptions=True)


async def test_connections_are_not_shared_and_reset_is_harmless(nats_url: str) -> None:
    first = await Connection.connect([nats_url])
    Connection.reset()
    second = await Connection.connect([nats_url])
    try:
        assert first is not second and not first.is_closed
    finally:
        await first.close()
        await second.close()

