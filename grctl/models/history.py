"""History events: the append-only record of a run on ``grctl_history.{wf_id}.{run_id}``
(docs/protocol.md#history-events)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from grctl.models.common import ErrorDetails


class HistoryKind(StrEnum):
    run_scheduled = "run.scheduled"
    run_started = "run.started"
    run_completed = "run.completed"
    run_failed = "run.failed"
    run_cancel_received = "run.cancel_received"
    run_cancelled = "run.cancelled"
    run_terminated = "run.terminated"
    run_timeout = "run.timeout"
    step_started = "step.started"
    step_completed = "step.completed"
    step_failed = "step.failed"
    step_cancelled = "step.cancelled"
    step_timeout = "step.timeout"
    wait_started = "wait.started"
    wait_timed_out = "wait.timed_out"
    event_received = "event.received"
    task_started = "task.started"
    task_completed = "task.completed"
    task_failed = "task.failed"
    task_attempt_failed = "task.attempt_failed"
    task_cancelled = "task.cancelled"
    timestamp_recorded = "timestamp.recorded"
    random_recorded = "random.recorded"
    uuid_recorded = "uuid.recorded"
    sleep_recorded = "sleep.recorded"
    child_started = "child.started"
    parent_event_sent = "parent.event_sent"


TERMINAL_KINDS = frozenset(
    {
        HistoryKind.run_completed,
        HistoryKind.run_failed,
        HistoryKind.run_cancelled,
        HistoryKind.run_terminated,
        HistoryKind.run_timeout,
    }
)

STEP_END_KINDS = frozenset({
    HistoryKind.step_completed, HistoryKind.step_failed, HistoryKind.step_cancelled, HistoryKind.step_timeout,
})


def dispatch_ended(events: list[HistoryEvent], task_seq: int) -> bool:
    """Do ``events`` (a run's history from a dispatch's ``history_seq_id`` on) say that the dispatch is
    over: the run ended, or a step ended after the task message (stream sequence ``task_seq``)? The
    previous step's end is committed in one batch with the dispatch, before its task message, so it
    counts only from a known ``task_seq`` on. A task delivered again once its dispatch is over (an ack
    lost with a crashed nats-server) has nothing left to do."""
    return any(e.kind in TERMINAL_KINDS or (task_seq > 0 and e.seq > task_seq and e.kind in STEP_END_KINDS)
               for e in events)

# Worker operations whose recorded outcome is replayed on a re-executed step
# (docs/protocol.md#replay-and-operation-ids).
REPLAY_KINDS = frozenset(
    {
        HistoryKind.task_completed,
        HistoryKind.task_failed,
        HistoryKind.task_cancelled,
        HistoryKind.event_received,
        HistoryKind.timestamp_recorded,
        HistoryKind.random_recorded,
        HistoryKind.uuid_recorded,
        HistoryKind.sleep_recorded,
        HistoryKind.child_started,
        HistoryKind.parent_event_sent,
    }
)


class RunScheduled(msgspec.Struct):
    pass


class RunStarted(msgspec.Struct, omit_defaults=True):
    input: Any = None
    # Ours: set when the run is the retry of an ended run, and the step it resumed at.
    retry_of: str = ""
    resumed_at: str = ""


class RunCompleted(msgspec.Struct):
    result: Any = None
    duration_ms: int = 0


class RunFailed(msgspec.Struct):
    error: ErrorDetails
    duration_ms: int = 0


class RunCancelReceived(msgspec.Struct):
    pass


class RunCancelled(msgspec.Struct):
    reason: str = ""
    duration_ms: int = 0


class RunTerminated(msgspec.Struct):
    reason: str = ""
    duration_ms: int = 0


class RunTimeout(msgspec.Struct):
    duration_ms: int = 0


class StepStarted(msgspec.Struct):
    step_name: str
    worker_id: str = ""


class StepCompleted(msgspec.Struct):
    step_name: str
    worker_id: str = ""
    duration_ms: int = 0


class StepFailed(msgspec.Struct):
    step_name: str
    error: ErrorDetails
    duration_ms: int = 0


class StepCancelled(msgspec.Struct):
    step_name: str


class StepTimedOut(msgspec.Struct):
    step_name: str
    duration_ms: int = 0


class WaitStarted(msgspec.Struct):
    directive_id: str = ""
    timeout_ms: int = 0
    timeout_step_name: str = ""


class WaitTimedOut(msgspec.Struct):
    original_directive_id: str = ""
    timeout_step_name: str = ""


class EventReceived(msgspec.Struct):
    event_name: str
    payload: Any = None


class TaskStarted(msgspec.Struct):
    task_id: str
    task_name: str
    args: dict[str, Any]
    step_name: str


class TaskCompleted(msgspec.Struct):
    task_id: str
    task_name: str
    output: dict[str, Any]
    step_name: str
    duration_ms: int


class TaskFailed(msgspec.Struct):
    task_id: str
    task_name: str
    step_name: str
    error: ErrorDetails
    duration_ms: int


class TaskAttemptFailed(msgspec.Struct):
    task_id: str
    task_name: str
    step_name: str
    attempt: int
    max_attempts: int
    error: ErrorDetails
    next_retry_delay_ms: int
    duration_ms: int


class TaskCancelled(msgspec.Struct):
    task_id: str
    task_name: str
    step_name: str
    duration_ms: int


class TimestampRecorded(msgspec.Struct):
    value: datetime


class RandomRecorded(msgspec.Struct):
    value: float


class UuidRecorded(msgspec.Struct):
    value: str


class SleepRecorded(msgspec.Struct):
    duration_ms: int


class ChildStarted(msgspec.Struct, omit_defaults=True):
    run_id: str
    wf_type: str
    wf_id: str
    input: Any = None


class ParentEventSent(msgspec.Struct):
    event_name: str
    payload: Any
    parent_wf_type: str
    parent_wf_id: str


# The public SDK's names for two of the types above.
ChildWorkflowStarted = ChildStarted
StepTimeout = StepTimedOut

# Event types by family (the public SDK's groupings).
RunEvents = (RunScheduled | RunStarted | RunCompleted | RunFailed | RunCancelReceived | RunCancelled
             | RunTerminated | RunTimeout)
StepEvents = StepStarted | StepCompleted | StepFailed | StepCancelled | StepTimedOut
WaitEvents = WaitStarted | WaitTimedOut | EventReceived
TaskEvents = TaskStarted | TaskCompleted | TaskFailed | TaskAttemptFailed | TaskCancelled
DeterministicEvents = TimestampRecorded | RandomRecorded | UuidRecorded | SleepRecorded


HISTORY_TYPES: dict[str, type[msgspec.Struct]] = {
    HistoryKind.run_scheduled: RunScheduled,
    HistoryKind.run_started: RunStarted,
    HistoryKind.run_completed: RunCompleted,
    HistoryKind.run_failed: RunFailed,
    HistoryKind.run_cancel_received: RunCancelReceived,
    HistoryKind.run_cancelled: RunCancelled,
    HistoryKind.run_terminated: RunTerminated,
    HistoryKind.run_timeout: RunTimeout,
    HistoryKind.step_started: StepStarted,
    HistoryKind.step_completed: StepCompleted,
    HistoryKind.step_failed: StepFailed,
    HistoryKind.step_cancelled: StepCancelled,
    HistoryKind.step_timeout: StepTimedOut,
    HistoryKind.wait_started: WaitStarted,
    HistoryKind.wait_timed_out: WaitTimedOut,
    HistoryKind.event_received: EventReceived,
    HistoryKind.task_started: TaskStarted,
    HistoryKind.task_completed: TaskCompleted,
    HistoryKind.task_failed: TaskFailed,
    HistoryKind.task_attempt_failed: TaskAttemptFailed,
    HistoryKind.task_cancelled: TaskCancelled,
    HistoryKind.timestamp_recorded: TimestampRecorded,
    HistoryKind.random_recorded: RandomRecorded,
    HistoryKind.uuid_recorded: UuidRecorded,
    HistoryKind.sleep_recorded: SleepRecorded,
    HistoryKind.child_started: ChildStarted,
    HistoryKind.parent_event_sent: ParentEventSent,
}


class HistoryWire(msgspec.Struct, omit_defaults=True):
    """Envelope on the wire; ``o`` (operation id) is left out for server-written events."""

    w: str
    r: str
    wo: str
    ts: datetime
    k: str
    m: bytes
    o: str = ""


class HistoryEvent(msgspec.Struct):
    wf_id: str
    run_id: str
    worker_id: str
    timestamp: datetime
    kind: HistoryKind
    msg: Any
    operation_id: str = ""
    seq: int = 0  # stream sequence, filled in by readers; not part of the wire format

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS


_wire_decoder = msgspec.msgpack.Decoder(HistoryWire)


def encode_history(event: HistoryEvent) -> bytes:
    wire = HistoryWire(
        w=event.wf_id,
        r=event.run_id,
        wo=event.worker_id,
        ts=event.timestamp,
        k=str(event.kind),
        m=msgspec.msgpack.encode(event.msg),
        o=event.operation_id,
    )
    return msgspec.msgpack.encode(wire)


def decode_history(data: bytes, seq: int = 0) -> HistoryEvent:
    wire = _wire_decoder.decode(data)
    factory = HISTORY_TYPES.get(wire.k)
    if factory is None:
        raise ValueError(f"unknown history kind {wire.k!r}")
    return HistoryEvent(
        wf_id=wire.w,
        run_id=wire.r,
        worker_id=wire.wo,
        timestamp=wire.ts,
        kind=HistoryKind(wire.k),
        msg=msgspec.msgpack.decode(wire.m, type=factory),
        operation_id=wire.o,
        seq=seq,
    )
