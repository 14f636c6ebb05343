"""Step timeouts across outages and queues, through a real engine and nats-server (a fake worker speaks
the raw protocol): a result the worker reported before the deadline wins over the timer even when it
waits, unapplied, with an engine that crashed; a deadline that passed while the engine was not watching
gives the step a recovery grace instead of failing it; a step no worker has taken yet keeps waiting; a
step taken and watched all along fails when its time is up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import msgspec
import pytest
from support.fake_worker import FakeWorker, eventually

from grctl.engine import Engine
from grctl.models import Directive, DirectiveKind, HistoryKind, StepTimeoutFired, utcnow
from grctl.models.records import Timer
from grctl.nats import direct, subjects
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(60)
H = HistoryKind


async def running_engine(nats_url: str, **options: object) -> tuple[Engine, Connection]:
    conn = await Connection.connect([nats_url], name="grctl-engine-timeouts")
    engine = Engine(conn, worker_cmd_timeout=2.0, sweep_interval=3600, **options)  # type: ignore[arg-type]
    await engine.start()
    return engine, conn


@pytest.fixture
async def engines(nats_url: str) -> AsyncIterator[list[tuple[Engine, Connection]]]:
    started: list[tuple[Engine, Connection]] = []
    yield started
    for engine, conn in started:
        await engine.stop(timeout=5)
        await conn.close()


def timed_out(task: Directive, armed_ago: float = 0.0, deadline_in: float = 0.0,
              armed_at: datetime | None = None, deadline: datetime | None = None) -> Directive:
    """The directive the timer consumer makes when the step timer of ``task`` fires."""
    now = utcnow()
    armed_at = armed_at or now - timedelta(seconds=armed_ago)
    deadline = deadline or now + timedelta(seconds=deadline_in)
    msg = StepTimeoutFired(step_name="start", original_directive_id=task.id, armed_at=armed_at,
                           deadline=deadline, armed_by=task.to_wire())
    return Directive(id=f"timer.test.{task.id}", timestamp=now, kind=DirectiveKind.step_timeout,
                     run_info=task.run_info, msg=msg)


async def test_a_result_reported_before_the_deadline_wins_over_the_timer(
        nats_url: str, connection: Connection, engines: list[tuple[Engine, Connection]]) -> None:
    engines.append(await running_engine(nats_url))
    worker = FakeWorker(connection)
    assert (await worker.register("Slow")).success
    _, info = await worker.start("Slow", "to-reported")
    task = await worker.next_task("Slow")
    first, first_conn = engines.pop()
    await first.stop(timeout=5)  # the engine goes away...
    await first_conn.close()
    await worker.result(task, "complete", {"result": "in time"})  # ...the worker reports in time...
    # ...and an engine that then crashed holds that report, unacknowledged, for a whole ack wait.
    holder = await connection.js.pull_subscribe_bind(subjects.DIRECTIVE_CONSUMER, stream=subjects.STREAM)
    [held] = await holder.fetch(1, timeout=5)
    assert held.subject == subjects.directive("Slow", "to-reported", info.id)
    await worker.publish_directive(timed_out(task, armed_ago=10, deadline_in=0.5))
    engines.append(await running_engine(nats_url))  # a fresh engine sees the timer first
    events = await worker.wait_history("to-reported", info.id, H.run_completed)
    kinds = [e.kind for e in events]
    assert H.step_timeout not in kinds and H.run_failed not in kinds
    assert events[-1].msg.result == "in time"
    await holder.unsubscribe()


async def test_a_deadline_missed_while_unwatched_gets_a_grace_then_fails(
        nats_url: str, connection: Connection, engines: list[tuple[Engine, Connection]]) -> None:
    engines.append(await running_engine(nats_url, recovery_grace=timedelta(seconds=3)))
    engine = engines[-1][0]
    worker = FakeWorker(connection)
    assert (await worker.register("Slow")).success
    _, info = await worker.start("Slow", "to-unwatched")
    task = await worker.next_task("Slow")
    await worker.picked_up(task, "start")
    await worker.wait_history("to-unwatched", info.id, H.step_started)
    fired = utcnow()
    # Armed before this engine started, so it could not watch the whole window; the deadline passed.
    armed_at = engine.watched_since() - timedelta(seconds=1)
    await worker.publish_directive(timed_out(task, armed_at=armed_at,
                                             deadline=armed_at + timedelta(seconds=0.5)))

    async def rearmed() -> Timer | None:
        stored = await direct.get_last(worker.nc, subjects.timer("to-unwatched", "step_timeout",
                                                                 f"step_timeout.{task.id}"))
        timer = msgspec.msgpack.decode(stored.data, type=Timer) if stored else None
        return timer if timer is not None and timer.created >= fired else None

    timer = await eventually(rearmed)
    assert timer.expires > fired and H.run_failed not in await worker.kinds("to-unwatched", info.id)
    # Nobody reports: when the new deadline passes, watched all along this time, the step fails.
    events = await worker.wait_history("to-unwatched", info.id, H.run_failed, timeout=15)
    kinds = [e.kind for e in events]
    assert kinds.count(H.step_timeout) == 1 and events[-1].msg.error.type == "StepTimeout"
    assert events[-1].timestamp >= timer.expires - timedelta(seconds=0.5)


async def test_a_step_no_worker_took_yet_waits_for_one(
        nats_url: str, connection: Connection, engines: list[tuple[Engine, Connection]]) -> None:
    engines.append(await running_engine(nats_url))
    worker = FakeWorker(connection)
    assert (await worker.register("Slow")).success
    _, info = await worker.start("Slow", "to-queued")
    task = await worker.next_task("Slow")  # fetched, but never reported as picked up: still queued
    await worker.publish_directive(timed_out(task, armed_ago=0, deadline_in=1))

    async def rearmed() -> bool:
        stored = await direct.get_last(worker.nc, subjects.timer("to-queued", "step_timeout",
                                                                 f"step_timeout.{task.id}"))
        return stored is not None and msgspec.msgpack.decode(stored.data, type=Timer).expires > utcnow()

    await eventually(rearmed)
    await worker.picked_up(task, "start")  # a worker takes it at last and finishes in time
    await worker.result(task, "complete", {"result": "waited"})
    events = await worker.wait_history("to-queued", info.id, H.run_completed)
    assert H.run_failed not in [e.kind for e in events]


async def test_a_timer_watched_all_along_fails_the_step(
        nats_url: str, connection: Connection, engines: list[tuple[Engine, Connection]]) -> None:
    engines.append(await running_engine(nats_url))
    worker = FakeWorker(connection)
    assert (await worker.register("Slow")).success
    _, info = await worker.start("Slow", "to-watched")
    task = await worker.next_task("Slow")
    await worker.picked_up(task, "start")
    await worker.wait_history("to-watched", info.id, H.step_started)
    await worker.publish_directive(timed_out(task, armed_ago=0, deadline_in=0))
    events = await worker.wait_history("to-watched", info.id, H.run_failed)
    assert [e.kind for e in events][-2:] == [H.step_timeout, H.run_failed]
