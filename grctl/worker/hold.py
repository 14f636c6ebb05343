"""When this worker's code cannot run a task: the handler is missing (renamed, removed, an ``on_timeout``
handler gone) or its parameters no longer bind the stored payload. That is a mismatch between the code
and the run, not the run's failure: the task is handed back (NAK) with a growing delay, so another
worker — a newer generation, another host — can take it, and the engine is told once so that the run
shows as stuck (docs/operations.md#deploying-new-code)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client as NATSClient

from grctl import settings
from grctl.codec import CodecRegistry
from grctl.models.common import RunInfo, StuckReason
from grctl.models.directive import Directive, DirectiveKind
from grctl.nats import subjects
from grctl.nats.direct import get_last
from grctl.worker.binding import bind_arguments
from grctl.workflow import HandlerConfig, Workflow

log = logging.getLogger("grctl.worker")
_info_decoder = msgspec.msgpack.Decoder(RunInfo)



@dataclass(frozen=True, slots=True)
class Mismatch:
    reason: StuckReason
    handler: str
    detail: str


def missing_handler(workflow: Workflow, task: Directive, step_name: str) -> Mismatch:
    if task.kind == DirectiveKind.start:
        detail = f"workflow {workflow.workflow_type!r} has no start handler"
    else:
        what = "event or step" if task.kind == DirectiveKind.event else "step"
        detail = f"workflow {workflow.workflow_type!r} has no {what} handler named {step_name!r}"
    return Mismatch(StuckReason.missing_handler, step_name, detail)


def bind_or_mismatch(config: HandlerConfig, step_name: str, payload: Any,
                     codec: CodecRegistry) -> dict[str, Any] | Mismatch:
    """The handler's keyword arguments, or the mismatch when the payload no longer binds them."""
    try:
        return bind_arguments(config.spec, payload, codec)
    except (TypeError, KeyError, ValueError, msgspec.ValidationError) as exc:
        detail = (f"the parameters of {step_name!r} do not bind the stored payload: "
                  f"{type(exc).__name__}: {exc}")
        return Mismatch(StuckReason.unbound_parameters, step_name, detail)


async def still_dispatched(nc: NATSClient, task: Directive) -> bool:
    """Is the run still at this task? A held task comes back after its run has ended (terminated,
    cancelled, timed out) or moved on: then it is dropped, not held for ever. When the run info cannot
    be read, the task counts as still wanted."""
    ri = task.run_info
    try:
        stored = await get_last(nc, subjects.run_info(ri.wf_type, ri.wf_id, ri.id))
    except Exception as exc:
        log.debug("cannot tell whether run %s still needs its held task (%s)", ri.id, exc)
        return True
    if stored is None:
        return False  # removed after its retention
    try:
        now = _info_decoder.decode(stored.data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return True
    return not now.is_terminal and now.history_seq_id == ri.history_seq_id


def hold_delay(delivered: int) -> float:
    """The pause before a held task, delivered ``delivered`` times so far, comes back."""
    return settings.HOLD_BACKOFF.delay(max(1, delivered))


class HeldRuns:
    """One log line per run and mismatch in this process, however often its task comes back."""

    def __init__(self, capacity: int = settings.HELD_RUNS_REMEMBERED) -> None:
        self._said: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    def log(self, task: Directive, mismatch: Mismatch, delay: float) -> None:
        ri = task.run_info
        key = f"{mismatch.reason}:{mismatch.handler}"
        if self._said.get(ri.id) == key:
            log.debug("run %s still held (%s); delivered again in %.0f s", ri.id, mismatch.detail, delay)
            return
        self._said[ri.id] = key
        self._said.move_to_end(ri.id)
        while len(self._said) > self._capacity:
            self._said.popitem(last=False)
        log.warning("run %s/%s (%s) is held, not failed: %s. The task is handed back (again in %.0f s, "
                    "then less often) until a worker with fitting code takes it", ri.wf_id, ri.id,
                    ri.wf_type, mismatch.detail, delay)

    def forget(self, run_id: str) -> None:
        self._said.pop(run_id, None)
