"""The replay cursor (docs/protocol.md#replay-and-operation-ids)."""

from __future__ import annotations

import asyncio

import pytest

from grctl.models.common import ErrorDetails, utcnow
from grctl.models.errors import NonDeterminismError
from grctl.models.history import (
    HistoryEvent,
    HistoryKind,
    RandomRecorded,
    TaskAttemptFailed,
    TaskCompleted,
    TaskStarted,
    TimestampRecorded,
)
from grctl.worker.replay import ReplayCursor

TASK = frozenset({HistoryKind.task_completed, HistoryKind.task_failed, HistoryKind.task_cancelled})
NOW = frozenset({HistoryKind.timestamp_recorded})


def ev(kind: HistoryKind, msg: object, op: str) -> HistoryEvent:
    return HistoryEvent(wf_id="W", run_id="R", worker_id="w", timestamp=utcnow(), kind=kind, msg=msg,
                        operation_id=op)


def started(op: str) -> HistoryEvent:
    return ev(HistoryKind.task_started, TaskStarted(task_id=op, task_name="t", args={}, step_name="s"), op)


def completed(op: str, result: object) -> HistoryEvent:
    return ev(HistoryKind.task_completed, TaskCompleted(task_id=op, task_name="t", output={"result": result},
                                                        step_name="s", duration_ms=1), op)


def attempt_failed(op: str, n: int) -> HistoryEvent:
    return ev(HistoryKind.task_attempt_failed, TaskAttemptFailed(
        task_id=op, task_name="t", step_name="s", attempt=n, max_attempts=3, error=ErrorDetails(type="E"),
        next_retry_delay_ms=1, duration_ms=1), op)


async def test_empty_history_executes_live() -> None:
    cursor = ReplayCursor([])
    assert not cursor.replaying
    assert await cursor.match("t:1", TASK) is None


async def test_recorded_operations_replay_in_order_then_live() -> None:
    cursor = ReplayCursor([started("t:1"), completed("t:1", "a"), completed("t:2", "b")])
    assert cursor.replaying
    first = await cursor.match("t:1", TASK)
    assert first is not None and first.msg.output == {"result": "a"}
    second = await cursor.match("t:2", TASK)
    assert second is not None and second.msg.output == {"result": "b"}
    assert not cursor.replaying
    assert await cursor.match("t:3", TASK) is None


async def test_events_without_operation_id_are_ignored() -> None:
    server_event = ev(HistoryKind.event_received, None, "")
    cursor = ReplayCursor([server_event])
    assert not cursor.replaying


async def test_non_replay_kinds_are_skipped_and_trailing_ones_end_replay() -> None:
    cursor = ReplayCursor([started("t:1"), attempt_failed("t:1", 1)])
    assert cursor.replaying
    assert cursor.count(HistoryKind.task_attempt_failed, "t:1") == 1
    assert await cursor.match("t:1", TASK) is None  # only observability events: execute live
    assert not cursor.replaying


async def test_different_operation_is_nondeterministic() -> None:
    cursor = ReplayCursor([completed("greet:aaa", "hello")])
    with pytest.raises(NonDeterminismError, match="Unresolved operation greet:bbb"):
        await cursor.match("greet:bbb", TASK)


async def test_unexpected_kind_is_nondeterministic() -> None:
    cursor = ReplayCursor([ev(HistoryKind.timestamp_recorded, TimestampRecorded(value=utcnow()), "x:1")])
    with pytest.raises(NonDeterminismError, match="expected one of"):
        await cursor.match("x:1", TASK)


async def test_concurrent_operations_resolve_out_of_call_order() -> None:
    cursor = ReplayCursor([
        ev(HistoryKind.random_recorded, RandomRecorded(value=0.5), "b:1"),
        completed("a:1", "A"),
    ])
    a, b = await asyncio.gather(cursor.match("a:1", TASK),
                                cursor.match("b:1", frozenset({HistoryKind.random_recorded})))
    assert a is not None and a.msg.output["result"] == "A"
    assert b is not None and b.msg.value == 0.5
    assert not cursor.replaying


async def test_now_replays_recorded_value() -> None:
    when = utcnow()
    cursor = ReplayCursor([ev(HistoryKind.timestamp_recorded, TimestampRecorded(value=when), "now:1")])
    event = await cursor.match("now:1", NOW)
    assert event is not None and event.msg.value == when


async def test_history_read_again_keeps_the_position() -> None:
    """A step whose claim was taken reads its history again: what it already matched stays matched, and
    what the other execution recorded since is replayed."""
    cursor = ReplayCursor([completed("t:1", "a")])
    assert await cursor.match("t:1", TASK) is not None
    assert await cursor.match("t:2", TASK) is None  # past its history: would run live
    cursor.extend([completed("t:1", "a"), started("t:2"), completed("t:2", "b")])
    assert cursor.replaying
    again = await cursor.match("t:2", TASK)
    assert again is not None and again.msg.output == {"result": "b"}
    assert not cursor.replaying
