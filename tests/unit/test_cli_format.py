"""How ``grctl`` shows history events, run info and results (``grctl.cli.format``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec

from grctl.cli import format as fmt
from grctl.models.common import ErrorDetails, RunInfo, RunStatus
from grctl.models.history import HISTORY_TYPES, HistoryEvent, HistoryKind

TS = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
ERR = ErrorDetails(type="ValueError", message="bad value")
H = HistoryKind

SAMPLES: dict[HistoryKind, tuple[dict[str, Any], str]] = {
    H.run_scheduled: ({}, ""),
    H.run_started: ({"input": {"name": "Ada"}}, 'input={"name": "Ada"}'),
    H.run_completed: ({"result": "ok", "duration_ms": 12}, 'result="ok" after 12 ms'),
    H.run_failed: ({"error": ERR, "duration_ms": 3}, "ValueError: bad value after 3 ms"),
    H.run_cancel_received: ({}, ""),
    H.run_cancelled: ({"reason": "enough", "duration_ms": 5}, 'reason="enough" after 5 ms'),
    H.run_terminated: ({"reason": "", "duration_ms": 0}, "after 0 ms"),
    H.run_timeout: ({"duration_ms": 1000}, "after 1000 ms"),
    H.step_started: ({"step_name": "start", "worker_id": "w1"}, "start on w1"),
    H.step_completed: ({"step_name": "start", "worker_id": "w1", "duration_ms": 4}, "start in 4 ms"),
    H.step_failed: ({"step_name": "charge", "error": ERR}, "charge: ValueError: bad value"),
    H.step_cancelled: ({"step_name": "charge"}, "charge"),
    H.step_timeout: ({"step_name": "charge", "duration_ms": 100}, "charge after 100 ms"),
    H.wait_started: ({"timeout_ms": 100, "timeout_step_name": "late"}, "timeout 100 ms, then late"),
    H.wait_timed_out: ({"timeout_step_name": ""}, "no timeout step"),
    H.event_received: ({"event_name": "approve", "payload": {"by": "me"}}, 'approve payload={"by": "me"}'),
    H.task_started: ({"task_id": "t:1", "task_name": "charge", "args": {"n": 1}, "step_name": "s"},
                     'charge args={"n": 1}'),
    H.task_completed: ({"task_id": "t:1", "task_name": "charge", "output": {"result": 2}, "step_name": "s",
                        "duration_ms": 7}, "charge result=2 in 7 ms"),
    H.task_failed: ({"task_id": "t:1", "task_name": "charge", "step_name": "s", "error": ERR,
                     "duration_ms": 1}, "charge: ValueError: bad value"),
    H.task_attempt_failed: ({"task_id": "t:1", "task_name": "charge", "step_name": "s", "attempt": 1,
                             "max_attempts": 3, "error": ERR, "next_retry_delay_ms": 100, "duration_ms": 1},
                            "charge attempt 1/3: ValueError: bad value, retry in 100 ms"),
    H.task_cancelled: ({"task_id": "t:1", "task_name": "charge", "step_name": "s", "duration_ms": 1},
                       "charge"),
    H.timestamp_recorded: ({"value": TS}, '"2026-01-02T03:04:05.678000Z"'),
    H.random_recorded: ({"value": 0.5}, "0.5"),
    H.uuid_recorded: ({"value": "u-1"}, '"u-1"'),
    H.sleep_recorded: ({"duration_ms": 250}, "250 ms"),
    H.child_started: ({"run_id": "R2", "wf_type": "Child", "wf_id": "c-1"}, "Child c-1 run R2"),
    H.parent_event_sent: ({"event_name": "done", "payload": None, "parent_wf_type": "P",
                           "parent_wf_id": "p-1"}, "done to p-1"),
}


def event(kind: HistoryKind, fields: dict[str, Any], seq: int = 42) -> HistoryEvent:
    msg = HISTORY_TYPES[kind](**fields)
    return HistoryEvent(wf_id="wf-1", run_id="R1", worker_id="", timestamp=TS, kind=kind, msg=msg, seq=seq)


def test_every_history_kind_has_a_summary() -> None:
    assert set(SAMPLES) == set(HistoryKind)
    for kind, (fields, expected) in SAMPLES.items():
        assert fmt.summary(event(kind, fields)) == expected, kind


def test_table_rows_line_up_under_the_header() -> None:
    row = fmt.table_row(event(H.step_started, {"step_name": "start", "worker_id": "w1"}, seq=7))
    assert row == "     7  2026-01-02 03:04:05.678  step.started         start on w1"
    assert fmt.TABLE_HEADER.index("EVENT") == row.index("step.started")
    assert fmt.TABLE_HEADER.index("DETAILS") == row.index("start on")


def test_long_values_are_cut() -> None:
    text = fmt.summary(event(H.run_started, {"input": {"text": "x" * 200}}))
    assert len(text) == len("input=") + fmt.VALUE_WIDTH and text.endswith("…")


def test_json_lines_and_values_json_cannot_hold() -> None:
    result = {"raw": b"\x00\x01", "at": TS}
    line = fmt.event_json(event(H.run_completed, {"result": result, "duration_ms": 1}))
    decoded = json.loads(line)
    assert decoded["kind"] == "run.completed" and decoded["seq"] == 42
    assert decoded["msg"]["result"] == {"raw": "AAE=", "at": "2026-01-02T03:04:05.678000Z"}
    assert fmt.result_text("Hello") == '"Hello"'
    assert json.loads(fmt.result_text({"a": [1, 2]})) == {"a": [1, 2]}


def test_run_info_lines_and_json() -> None:
    info = RunInfo(id="R1", wf_id="wf-1", wf_type="Flow", status=RunStatus.running, created_at=TS, timeout=30,
                   parent_wf_id="p-1", parent_wf_type="P", parent_run_id="R0")
    lines = fmt.run_info_lines(info)
    assert lines[:4] == ["Workflow id:     wf-1", "Type:            Flow", "Run id:          R1",
                         "Status:          running"]
    assert "Created:         2026-01-02 03:04:05.678 UTC" in lines
    assert "Timeout:         30s" in lines and "Parent:          p-1 (P, run R0)" in lines
    assert not any(line.startswith("Completed") for line in lines)
    assert json.loads(fmt.run_info_json(info)) == json.loads(json.dumps(msgspec.to_builtins(info)))
