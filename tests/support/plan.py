"""Builders and readers shared by the plan tests (no tests here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from grctl.engine.plan import PlanConfig, Snapshot, plan
from grctl.engine.writes import BgRec, HistoryRec, InfoRec, Record, StateRec, TaskRec, TimerRec
from grctl.models.common import ErrorDetails, RunInfo, RunStatus
from grctl.models.directive import Directive, DirectiveKind, Event, StepResult
from grctl.models.history import HistoryKind
from grctl.models.records import RunState, RunStateKind

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = T0 + timedelta(seconds=10)
CONFIG = PlanConfig(step_timeout=timedelta(minutes=5), wait_timeout=timedelta(hours=1))
WF, RUN, TYPE = "W1", "R1", "T"

STEP_DIRECTIVE = "next.S0"  # the dispatched task of the step that is running in ``stepping()``
STEP_SEQ = 5  # its replay window start (history_seq_id)


def run_info(**kw: Any) -> RunInfo:
    base: dict[str, Any] = {"id": RUN, "wf_id": WF, "wf_type": TYPE, "created_at": T0}
    base.update(kw)
    return RunInfo(**base)


def running_info(**kw: Any) -> RunInfo:
    base: dict[str, Any] = {"status": RunStatus.running, "started_at": T0, "history_seq_id": STEP_SEQ}
    base.update(kw)
    return run_info(**base)


def directive(kind: DirectiveKind, msg: Any, id: str = "D1", r: RunInfo | None = None,
              ts: datetime = NOW) -> Directive:
    return Directive(id=id, timestamp=ts, kind=kind, run_info=r or running_info(), msg=msg)


def state(kind: RunStateKind, **kw: Any) -> RunState:
    base: dict[str, Any] = {"wf_id": WF, "run_id": RUN, "kind": kind, "entered_at": T0,
                            "last_event_seq_id": 0, "started_at": T0}
    base.update(kw)
    return RunState(**base)


def stepping(**kw: Any) -> RunState:
    """A run whose step ``charge`` was dispatched as ``next.S0`` with window 5 and picked up by w1."""
    base: dict[str, Any] = {"active_directive_id": STEP_DIRECTIVE, "active_step_name": "charge",
                            "active_history_seq_id": STEP_SEQ,
                            "active_timer_id": f"step_timeout.{STEP_DIRECTIVE}", "worker_id": "w1"}
    base.update(kw)
    return state(RunStateKind.step, **base)


def waiting(wait_id: str = "next.S9", **kw: Any) -> RunState:
    base: dict[str, Any] = {"active_directive_id": wait_id, "active_timer_id": f"wait_timeout.{wait_id}",
                            "worker_id": "w1"}
    base.update(kw)
    return state(RunStateKind.wait, **base)


def snap(st: RunState | None = None, seq: int = 0, last_history: int = 0, next_event: Directive | None = None,
         inbox_last: int = 0) -> Snapshot:
    if st is not None and seq == 0:
        seq = 42
    return Snapshot(wf_id=WF, run_id=RUN, state=st, state_seq=seq, last_history_seq=last_history,
                    next_event=next_event, inbox_last_seq=inbox_last)


def step_result(next_kind: str, next_msg: dict[str, Any], *, processed_kind: str = "step",
                processed: dict[str, Any] | None = None, kv: dict[str, Any] | None = None,
                hs: int = STEP_SEQ, id: str = "S1", r: RunInfo | None = None) -> Directive:
    msg = StepResult(
        processed_msg_kind=processed_kind,
        processed_msg=processed if processed is not None else {"step_name": "charge", "timeout_ms": 1000},
        worker_id="w1", kv_updates=kv if kv is not None else {}, next_msg_kind=next_kind, next_msg=next_msg,
        duration_ms=12,
    )
    return directive(DirectiveKind.step_result, msg, id=id, r=r or running_info(history_seq_id=hs))


def inbox_event(seq: int, name: str = "finish", payload: Any = None) -> Directive:
    msg = Event(event_name=name, payload=payload, event_seq_id=seq)
    return directive(DirectiveKind.event, msg, id=f"E{seq}")


def run(s: Snapshot, d: Directive) -> list[Record]:
    return plan(s, d, NOW, CONFIG)


# --- readers -----------------------------------------------------------------------------------------


def of(records: list[Record], cls: type) -> list[Any]:
    return [r for r in records if isinstance(r, cls)]


def history(records: list[Record]) -> list[HistoryKind]:
    return [r.event.kind for r in of(records, HistoryRec)]


def history_msg(records: list[Record], kind: HistoryKind) -> Any:
    found = [r.event for r in of(records, HistoryRec) if r.event.kind == kind]
    assert len(found) == 1, f"{kind}: {found}"
    return found[0].msg


def bg(records: list[Record]) -> list[str]:
    return [r.kind for r in of(records, BgRec)]


def bg_payload(records: list[Record], kind: str) -> Any:
    found = [r for r in of(records, BgRec) if r.kind == kind]
    assert len(found) == 1
    return found[0].payload


def final_state(records: list[Record]) -> RunState:
    return of(records, StateRec)[-1].state


def final_info(records: list[Record]) -> RunInfo:
    return of(records, InfoRec)[-1].info


def task(records: list[Record]) -> Directive:
    tasks = of(records, TaskRec)
    assert len(tasks) == 1
    return tasks[0].directive


def timers(records: list[Record]) -> list[TimerRec]:
    return of(records, TimerRec)


def kinds(records: list[Record]) -> list[str]:
    """The layout of a batch, one short name per record (history kinds spelled out)."""
    names = []
    for r in records:
        if isinstance(r, HistoryRec):
            names.append(f"H:{r.event.kind}")
        elif isinstance(r, BgRec):
            names.append(f"BG:{r.kind}")
        elif isinstance(r, StateRec):
            names.append(f"STATE:{r.state.kind}")
        elif isinstance(r, TimerRec):
            names.append(f"TIMER:{r.timer.k}")
        else:
            names.append(type(r).__name__.removesuffix("Rec").upper())
    return names


def error(type_: str = "ValueError", message: str = "boom") -> dict[str, Any]:
    return msgspec.to_builtins(ErrorDetails(type=type_, message=message, stack_trace="tb"))
