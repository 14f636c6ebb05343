"""``Client.follow_history``: the stored history, then new events live, ending with the run."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from support.sdk import kinds, wait_for, wait_history, workers

from grctl.client.client import Client
from grctl.models import Directive
from grctl.models.history import HistoryEvent
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)

waiting = Workflow("FollowMe")


@waiting.start()
async def follow_start(ctx: Context) -> Directive:
    return ctx.next.wait()


@waiting.event()
async def finish(ctx: Context, result: str = "done") -> Directive:
    return ctx.next.complete(result)


async def collect(client: Client, wf_id: str, run_id: str | None = None) -> list[HistoryEvent]:
    return [event async for event in client.follow_history(wf_id, run_id)]


async def consumers(connection: Connection) -> int:
    return (await connection.js.stream_info(subjects.STREAM)).state.consumer_count


async def test_follow_history_until_the_run_ends(engine: Any, connection: Connection, nats_url: str) -> None:
    client = Client(connection)
    async with workers(nats_url) as start_worker:
        await start_worker(waiting)
        handle = await client.start_workflow("FollowMe", "follow-1")
        await wait_history(client, "follow-1", "wait.started")
        before = await consumers(connection)
        following = asyncio.create_task(collect(client, "follow-1"))

        async def subscribed() -> bool:
            return await consumers(connection) > before

        await wait_for(subscribed, 10)
        assert not following.done()
        await handle.send("finish", {"result": "approved"})
        events = await asyncio.wait_for(following, 10)
        assert await handle.result(timeout=5) == "approved"
        assert kinds(events) == kinds(await client.get_history("follow-1"))
        assert [e.seq for e in events] == sorted(e.seq for e in events) and events[-1].is_terminal
        assert events[-1].msg.result == "approved"

        # A finished run: everything at once, by run id too.
        assert kinds(await collect(client, "follow-1", handle.run_id)) == kinds(events)

        # Leaving early ends the subscription and its consumer.
        await client.start_workflow("FollowMe", "follow-2")
        before = await consumers(connection)
        async with contextlib.aclosing(client.follow_history("follow-2")) as stream:
            first = await anext(stream)
            assert str(first.kind) == "run.started"
            assert await consumers(connection) == before + 1

        async def released() -> bool:
            return await consumers(connection) <= before

        await wait_for(released, 15)
