"""The group committer against a real nats-server: shared batches, and a refused member split out."""

from __future__ import annotations

import asyncio

import pytest

from grctl.engine.committer import GroupCommitter
from grctl.nats import direct, subjects
from grctl.nats import jetstream as jsops
from grctl.nats.connection import Connection


def transition(run: str, expected: int) -> list[jsops.OutMsg]:
    return [
        jsops.OutMsg(subjects.history("W", run), b"event"),
        jsops.OutMsg(subjects.run_state("W", run), b"state",
                     {jsops.H_EXPECTED_LAST_SUBJECT_SEQ: str(expected)}),
    ]


async def stored(connection: Connection) -> int:
    return (await connection.js.stream_info(subjects.STREAM)).state.messages


async def test_transitions_ready_together_share_one_batch(connection: Connection) -> None:
    await jsops.ensure_stream(connection.js)
    committer = GroupCommitter(connection, max_inflight=1)
    committer.start()
    try:
        acks = await asyncio.gather(*(committer.submit(transition(f"R{i}", 0)) for i in range(30)))
        assert committer.transitions == 30 and committer.batches == 1
        assert {a["seq"] for a in acks} == {60} and await stored(connection) == 60
    finally:
        await committer.close()


async def test_a_refused_member_fails_alone_and_the_others_are_stored(connection: Connection) -> None:
    await jsops.ensure_stream(connection.js)
    committer = GroupCommitter(connection, max_inflight=1)
    committer.start()
    try:
        good = [committer.submit(transition(f"R{i}", 0)) for i in range(30)]
        bad = committer.submit(transition("R0", 0))  # the same run again: its CAS 0 cannot hold twice
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], jsops.JetStreamError)
        assert errors[0].err_code in (jsops.ERR_WRONG_LAST_SEQUENCE, 10164)
        assert committer.split_batches == 1
        for i in range(30):
            assert await direct.get_last(connection.nc, subjects.run_state("W", f"R{i}")) is not None
        assert await stored(connection) == 60
    finally:
        await committer.close()


async def test_one_batch_per_transition_when_disabled(connection: Connection) -> None:
    await jsops.ensure_stream(connection.js)
    committer = GroupCommitter(connection, enabled=False)
    committer.start()
    try:
        await asyncio.gather(*(committer.submit(transition(f"S{i}", 0)) for i in range(5)))
        assert committer.batches == 5
        with pytest.raises(ValueError):
            await committer.submit([])
    finally:
        await committer.close()
