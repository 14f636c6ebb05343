"""Child workflows from inside a handler: ``start_child``, ``run_child``,
``send_to_parent``, and ``ChildOutcome`` — what a completion-callback step receives.

Starting a child and sending to the parent are replayable operations: a re-executed step reuses the
recorded child run id and does not send the start command (or the event) again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec
from ulid import ULID

from grctl.models.command import CommandKind, EventCmd
from grctl.models.common import ErrorDetails, RunInfo, RunStatus, utcnow
from grctl.models.errors import WorkflowError
from grctl.models.history import ChildStarted, HistoryKind, ParentEventSent
from grctl.nats import api_client as api
from grctl.nats import subjects
from grctl.nats.retry import is_transient
from grctl.nats.subjects import check_token
from grctl.worker.errors import StepInterrupted
from grctl.workflow.handle import WorkflowHandle, start_run

if TYPE_CHECKING:
    from grctl.worker.runtime import StepRuntime

T = TypeVar("T")



class ChildOutcome(msgspec.Struct, Generic[T]):
    """How a child run ended, delivered to the parent's ``on_completed_step``.

    ``ChildOutcome[Model]`` converts the child's result to ``Model``.
    """

    status: RunStatus
    result: T | None = None
    error: ErrorDetails | None = None

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.completed

    def unwrap(self) -> T | None:
        """The result of a completed child; ``WorkflowError`` otherwise."""
        if self.ok:
            return self.result
        if self.error is not None:
            raise WorkflowError(f"{self.error.type}: {self.error.message}")
        raise WorkflowError(f"WorkflowError: child workflow {self.status}")


def _timeout_seconds(workflow_timeout: timedelta | float | None) -> int | None:
    if workflow_timeout is None:
        return None
    seconds = (workflow_timeout.total_seconds() if isinstance(workflow_timeout, timedelta)
               else float(workflow_timeout))
    return int(seconds) or None


def _step_name(fn: Callable[..., Any] | str | None) -> str | None:
    if fn is None:
        return None
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", None)
    if not name:
        raise ValueError("on_completed_step must be a named step handler")
    return name


async def start_child(rt: StepRuntime, workflow_type: str, workflow_id: str, workflow_input: Any = None,
                      workflow_timeout: timedelta | float | None = None,
                      on_completed_step: Callable[..., Any] | str | None = None) -> WorkflowHandle:
    check_token("workflow type", workflow_type)
    check_token("workflow id", workflow_id)
    seconds = _timeout_seconds(workflow_timeout)
    # Normalised first: the operation id then hashes the same bytes whatever the codec makes of a type.
    input_value = rt.codec.normalize(workflow_input)
    run = rt.run_info

    def child(run_id: str) -> RunInfo:
        return RunInfo(id=run_id, wf_id=workflow_id, wf_type=workflow_type, timeout=seconds,
                       created_at=utcnow(), parent_wf_id=run.wf_id, parent_wf_type=run.wf_type,
                       parent_run_id=run.id, parent_callback_step=_step_name(on_completed_step))

    async def start() -> WorkflowHandle:
        return await _interruptible(
            start_run(rt.connection, child(str(ULID())), input_value, rt.worker_id, budget=rt.io_budget,
                      codec=rt.codec, subject=subjects.api_child(run.wf_type, run.wf_id, run.id)),
            f"starting child workflow {workflow_id!r}")

    handle = await rt.once(
        "start", {"wf_type": workflow_type, "wf_id": workflow_id, "workflow_input": input_value,
                  "workflow_timeout": seconds}, HistoryKind.child_started, start,
        lambda h: ChildStarted(run_id=h.run_id, wf_type=workflow_type, wf_id=workflow_id, input=input_value),
        lambda e: WorkflowHandle(child(e.msg.run_id), rt.connection, rt.worker_id, codec=rt.codec))
    rt.closers.append(handle)
    return handle


async def _interruptible(operation: Awaitable[T], what: str) -> T:
    """Await an API call made by a step; transport trouble that outlasted the step's retries interrupts
    the step (it is delivered again) instead of failing it."""
    try:
        return await operation
    except Exception as exc:
        if is_transient(exc):
            raise StepInterrupted(f"{what}: {type(exc).__name__}: {exc}") from exc
        raise


async def run_child(rt: StepRuntime, workflow_type: str, workflow_id: str, workflow_input: Any = None,
                    workflow_timeout: timedelta | float | None = None, timeout: float | None = None) -> Any:
    """Start a child and wait (``timeout`` seconds at most) for its result."""
    handle = await start_child(rt, workflow_type, workflow_id, workflow_input, workflow_timeout)
    return await handle.result(timeout=timeout)


async def send_to_parent(rt: StepRuntime, event_name: str, payload: Any = None) -> None:
    check_token("event name", event_name)
    run = rt.run_info
    if not run.parent_wf_id:
        raise RuntimeError("this run has no parent workflow to send an event to")
    value = rt.codec.normalize(payload)

    async def send() -> None:
        await _interruptible(api.call(rt.connection, run.parent_wf_id or "", CommandKind.run_event,
                                      EventCmd(wf_id=run.parent_wf_id or "", event_name=event_name,
                                               payload=value), rt.worker_id, budget=rt.io_budget,
                                      subject=subjects.api_child(run.wf_type, run.wf_id, run.id)),
                             f"sending event {event_name!r} to the parent workflow")

    await rt.once("send_to_parent", {"event_name": event_name, "payload": value},
                  HistoryKind.parent_event_sent, send,
                  lambda _: ParentEventSent(event_name=event_name, payload=value,
                                            parent_wf_type=run.parent_wf_type or "",
                                            parent_wf_id=run.parent_wf_id or ""),
                  lambda _: None)
