"""What ``grctl describe`` shows beyond the run info: the result or the error, and the step the run is
at or ended in. Read with exact-subject direct gets of the run's own records (its output, error and
run state), so describing a run costs the same whatever its history's length."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client as NATSClient

from grctl.models.common import ErrorDetails, RunInfo, RunStatus
from grctl.models.directive import Wait, step_name_of
from grctl.models.records import RunState, RunStateKind
from grctl.nats import subjects
from grctl.nats.direct import get_last
from grctl.nats.history import last_event

_state_decoder = msgspec.msgpack.Decoder(RunState)
_error_decoder = msgspec.msgpack.Decoder(ErrorDetails)


@dataclass(frozen=True, slots=True)
class RunDetails:
    """A run as an operator looks at it. ``step``: the step it is at (running) or ended in, "" when not
    known (an engine that does not record it); ``waiting``: it waits (or ended waiting) for an event.
    ``has_result`` tells a completed run whose result is ``None`` from one with no result."""

    info: RunInfo
    step: str = ""
    waiting: bool = False
    result: Any = None
    has_result: bool = False
    error: ErrorDetails | None = None


def _position(state: RunState | None) -> tuple[str, bool]:
    if state is None:
        return "", False
    if state.kind == RunStateKind.wait:
        return "", True
    if state.active_step_name:
        return state.active_step_name, False
    if state.active_task is None:
        return "", False
    try:
        msg = state.active_task.message()
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        return "", False
    return step_name_of(msg), isinstance(msg, Wait)


async def read_details(nc: NATSClient, info: RunInfo) -> RunDetails:
    wf_id, run_id = info.wf_id, info.id
    state_msg = await get_last(nc, subjects.run_state(wf_id, run_id))
    state = _state_decoder.decode(state_msg.data) if state_msg is not None else None
    step, waiting = _position(state)
    output = stored_error = None
    if info.is_terminal:
        output = await get_last(nc, subjects.run_output(wf_id, run_id))
        stored_error = await get_last(nc, subjects.run_error(wf_id, run_id))
    error = _error_decoder.decode(stored_error.data) if stored_error is not None else None
    if error is None and info.status in (RunStatus.cancelled, RunStatus.terminated):
        error = await _ending_reason(nc, info)
    return RunDetails(
        info=info, step=step, waiting=waiting,
        result=msgspec.msgpack.decode(output.data) if output is not None else None,
        has_result=output is not None, error=error,
    )


async def _ending_reason(nc: NATSClient, info: RunInfo) -> ErrorDetails:
    """A cancelled or terminated run keeps no error record: its reason is in its last history event."""
    ended = await last_event(nc, info.wf_id, info.id)
    reason = getattr(ended.msg, "reason", "") if ended is not None else ""
    kind = "Terminated" if info.status == RunStatus.terminated else "Cancelled"
    return ErrorDetails(type=kind, message=reason or f"run was {info.status}")
