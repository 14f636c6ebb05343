"""The hand-made JetStream operations against a real nats-server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from grctl.models import utcnow
from grctl.nats import direct, subjects
from grctl.nats import jetstream as jsops
from grctl.nats.connection import Connection


async def test_stream_is_created_and_updated_idempotently(connection: Connection) -> None:
    await jsops.ensure_stream(connection.js)
    await jsops.ensure_stream(connection.js)
    info = await connection.js.stream_info(subjects.STREAM)
    assert info.config.allow_atomic and info.config.allow_msg_schedules and info.config.allow_direct
    assert set(subjects.STREAM_SUBJECTS) <= set(info.config.subjects)


async def test_atomic_batch_commits_all_or_nothing(connection: Connection) -> None:
    await jsops.ensure_stream(connection.js)
    nc = connection.nc
    msgs = [jsops.OutMsg(subjects.history("W1", "R1"), f"e{i}".encode()) for i in range(3)]
    ack = await jsops.publish_batch(nc, msgs)
    assert ack["count"] == 3
    last = await direct.get_last(nc, subjects.history("W1", "R1"))
    assert last is not None and last.data == b"e2" and last.seq == ack["seq"]

    # A compare-and-swap that fails rejects the whole batch.
    bad = [
        jsops.OutMsg(subjects.history("W1", "R1"), b"x"),
        jsops.OutMsg(subjects.run_state("W1", "R1"), b"s",
                     {jsops.H_EXPECTED_LAST_SUBJECT_SEQ: "999"}),
    ]
    with pytest.raises(jsops.JetStreamError) as err:
        await jsops.publish_batch(nc, bad)
    assert err.value.err_code == jsops.ERR_WRONG_LAST_SEQUENCE
    assert (await direct.get_last(nc, subjects.history("W1", "R1"))).data == b"e2"


async def test_direct_gets_and_purge(connection: Connection) -> None:
    await jsops.ensure_stream(connection.js)
    nc = connection.nc
    assert await direct.get_last(nc, subjects.inbox("W9")) is None
    a = await jsops.publish(nc, subjects.inbox("W9"), b"a")
    await jsops.publish(nc, subjects.inbox("W9"), b"b")
    first = await direct.get_next(nc, subjects.inbox("W9"), a["seq"])
    assert first is not None and first.data == b"a"
    second = await direct.get_next(nc, subjects.inbox("W9"), a["seq"] + 1)
    assert second is not None and second.data == b"b"
    assert await direct.get_next(nc, subjects.inbox("W9"), second.seq + 1) is None
    assert await jsops.purge(nc, subjects.inbox("W9")) == 2
    assert await direct.get_last(nc, subjects.inbox("W9")) is None


async def test_schedule_fires_onto_target(connection: Connection) -> None:
    await jsops.ensure_stream(connection.js)
    nc = connection.nc
    when = utcnow() + timedelta(milliseconds=300)
    await jsops.publish(nc, subjects.timer("W5", "step_timeout", "t1"), b"timer-body",
                        jsops.schedule_headers(when, subjects.TIMERS_FIRED))
    for _ in range(50):
        fired = await direct.get_last(nc, subjects.TIMERS_FIRED)
        if fired:
            break
        await asyncio.sleep(0.05)
    assert fired is not None and fired.data == b"timer-body"
