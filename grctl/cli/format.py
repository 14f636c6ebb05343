"""How the ``grctl`` command line shows things: results and payloads as JSON, run info as aligned
lines, history as a fixed-width table (so ``--follow`` can print row by row) or as JSON Lines."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec

from grctl.client.details import RunDetails
from grctl.models.common import ErrorDetails, RunInfo
from grctl.models.history import HistoryEvent, HistoryKind

H = HistoryKind
VALUE_WIDTH = 60


def _default(value: Any) -> Any:
    """JSON for what msgpack carries but JSON does not: bytes (base64), timestamps (RFC 3339, UTC as Z)."""
    return msgspec.to_builtins(value)


def to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False, indent=indent)


def result_text(value: Any) -> str:
    """A run's result as printed by ``grctl run``: JSON, indented when it is a map or a list."""
    return to_json(value, indent=2 if isinstance(value, dict | list) else None)


def short(value: Any, width: int = VALUE_WIDTH) -> str:
    """A value as compact JSON, cut to ``width`` characters."""
    text = to_json(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def error_text(error: ErrorDetails | None) -> str:
    if error is None:
        return "unknown error"
    return f"{error.type or 'UnknownError'}: {error.message or 'No message'}"


def _ms(value: int) -> str:
    return f"{value} ms"


def summary(e: HistoryEvent) -> str:
    """The DETAILS column of one history event."""
    m = e.msg
    k = e.kind
    if k == H.run_started:
        retry = f"retry of run {m.retry_of} at {m.resumed_at}" if getattr(m, "retry_of", "") else ""
        given = "" if m.input is None else f"input={short(m.input)}"
        return ", ".join(part for part in (retry, given) if part)
    if k == H.run_completed:
        return f"result={short(m.result)} after {_ms(m.duration_ms)}"
    if k == H.run_failed:
        return f"{error_text(m.error)} after {_ms(m.duration_ms)}"
    if k in (H.run_cancelled, H.run_terminated):
        reason = f"reason={short(m.reason)} " if m.reason else ""
        return f"{reason}after {_ms(m.duration_ms)}"
    if k == H.run_timeout:
        return f"after {_ms(m.duration_ms)}"
    if k == H.step_started:
        return f"{m.step_name} on {m.worker_id}" if m.worker_id else m.step_name
    if k == H.step_completed:
        return f"{m.step_name} in {_ms(m.duration_ms)}"
    if k == H.step_failed:
        return f"{m.step_name}: {error_text(m.error)}"
    if k == H.step_timeout:
        return f"{m.step_name} after {_ms(m.duration_ms)}"
    if k in (H.step_cancelled,):
        return m.step_name
    if k == H.wait_started:
        limit = f"timeout {_ms(m.timeout_ms)}" if m.timeout_ms else "default timeout"
        return f"{limit}, then {m.timeout_step_name}" if m.timeout_step_name else limit
    if k == H.wait_timed_out:
        return f"then {m.timeout_step_name}" if m.timeout_step_name else "no timeout step"
    if k == H.event_received:
        return m.event_name if m.payload is None else f"{m.event_name} payload={short(m.payload)}"
    return _worker_summary(e)


def _worker_summary(e: HistoryEvent) -> str:
    m = e.msg
    k = e.kind
    if k == H.task_started:
        return f"{m.task_name} args={short(m.args)}"
    if k == H.task_completed:
        return f"{m.task_name} result={short(m.output.get('result'))} in {_ms(m.duration_ms)}"
    if k == H.task_failed:
        return f"{m.task_name}: {error_text(m.error)}"
    if k == H.task_attempt_failed:
        return (f"{m.task_name} attempt {m.attempt}/{m.max_attempts}: {error_text(m.error)}, "
                f"retry in {_ms(m.next_retry_delay_ms)}")
    if k == H.task_cancelled:
        return m.task_name
    if k in (H.timestamp_recorded, H.random_recorded, H.uuid_recorded):
        return short(m.value)
    if k == H.sleep_recorded:
        return _ms(m.duration_ms)
    if k == H.child_started:
        return f"{m.wf_type} {m.wf_id} run {m.run_id}"
    if k == H.parent_event_sent:
        payload = "" if m.payload is None else f" payload={short(m.payload)}"
        return f"{m.event_name} to {m.parent_wf_id}{payload}"
    fields = msgspec.to_builtins(m)
    return short(fields) if fields else ""


TABLE_HEADER = f"{'SEQ':>6}  {'TIME (UTC)':<23}  {'EVENT':<19}  DETAILS"


def _time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def table_row(e: HistoryEvent) -> str:
    return f"{e.seq:>6}  {_time(e.timestamp):<23}  {e.kind!s:<19}  {summary(e)}".rstrip()


def event_json(e: HistoryEvent) -> str:
    """One history event as one line of JSON (``history --json``)."""
    return to_json({"seq": e.seq, "timestamp": e.timestamp, "kind": str(e.kind), "wf_id": e.wf_id,
                    "run_id": e.run_id, "worker_id": e.worker_id, "operation_id": e.operation_id,
                    "msg": msgspec.to_builtins(e.msg)})


def run_info_json(info: RunInfo) -> str:
    return to_json(msgspec.to_builtins(info), indent=2)


def details_json(d: RunDetails) -> str:
    """``grctl describe --json``: the run info's keys, then ``step``, ``waiting``, and ``result`` or
    ``error`` when the run has one."""
    out = msgspec.to_builtins(d.info)
    out.update(step=d.step or None, waiting=d.waiting)
    if d.has_result:
        out["result"] = d.result
    if d.error is not None:
        out["error"] = msgspec.to_builtins(d.error)
    return to_json(out, indent=2)


def _label(label: str, text: str) -> str:
    return f"{label + ':':<17}{text}"


def details_lines(d: RunDetails, traceback: bool = False) -> list[str]:
    """``grctl describe``: the run info, where the run is, whether it is stuck and why, its result or
    error (with the traceback when asked)."""
    info = d.info
    out = run_info_lines(info)
    where = "Failed in" if info.status in ("failed", "timed_out") else "Ended in" if info.is_terminal \
        else "At step"
    if d.step:
        out.append(_label(where, d.step))
    if d.waiting:
        out.append(_label("Waiting", "ended while waiting for an event" if info.is_terminal
                          else "for an event"))
    if info.stuck is not None:
        s = info.stuck
        by = f", reported by {s.worker_id}" if s.worker_id else ""
        out.append(_label("Stuck", f"since {_time(s.since)} UTC: {s.reason} {s.handler!r}{by}"))
        if s.detail:
            out.append(_label("", s.detail))
    if d.has_result:
        out.append(_label("Result", short(d.result, 200)))
    if d.error is not None:
        out.append(_label("Error", error_text(d.error)))
        if traceback and d.error.stack_trace:
            out += ["Traceback:", *("  " + line for line in d.error.stack_trace.rstrip().splitlines())]
    if info.retry_of:
        out.append(_label("Retry of", f"run {info.retry_of}"))
    if info.retried_as:
        out.append(_label("Retried as", f"run {info.retried_as}"))
    return out


def run_info_lines(info: RunInfo) -> list[str]:
    """``grctl describe``: one "label: value" line per known field."""
    rows: list[tuple[str, Any]] = [
        ("Workflow id", info.wf_id), ("Type", info.wf_type), ("Run id", info.id),
        ("Status", str(info.status)),
        ("Created", info.created_at), ("Starts at", info.scheduled_at if info.status == "pending" else None),
        ("Started", info.started_at), ("Completed", info.completed_at),
    ]
    if info.timeout_seconds:
        rows.append(("Timeout", f"{info.timeout_seconds:g}s"))
    if info.parent_wf_id:
        rows.append(("Parent", f"{info.parent_wf_id} ({info.parent_wf_type}, run {info.parent_run_id})"))
    if info.parent_callback_step:
        rows.append(("Parent callback", info.parent_callback_step))
    out = []
    for label, value in rows:
        if value is None:
            continue
        text = _time(value) + " UTC" if isinstance(value, datetime) else str(value)
        out.append(f"{label + ':':<17}{text}")
    return out
