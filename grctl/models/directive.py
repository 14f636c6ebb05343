"""Directives: the messages that drive a run's state machine (docs/protocol.md#directives).

A directive travels as an envelope ``{id, k, t, r, a, m}`` whose ``m`` holds the kind-specific message,
itself msgpack-encoded into a ``bin``. ``Directive`` is the decoded, typed form.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import msgspec

from grctl.models.common import ErrorDetails, RunInfo


class DirectiveKind(StrEnum):
    start = "start"
    step = "step"
    event = "event"
    cancel = "cancel"
    terminate = "terminate"
    step_picked_up = "step_picked_up"
    step_result = "step_result"
    complete = "complete"
    fail = "fail"
    fail_step = "fail_step"
    wait = "wait"
    step_timeout = "step_timeout"
    wait_timeout = "wait_timeout"
    wake_from_inbox = "wake_from_inbox"
    run_timeout = "run_timeout"  # ours: the run-level timeout fired (engine-internal)
    step_held = "step_held"  # ours: a worker holds a task its code cannot run (the public server drops it)
    resume = "resume"  # ours: the retry of an ended run (engine-internal)


class RetryPolicy(msgspec.Struct, omit_defaults=True):
    """How a task is retried; lives in the worker only, never on the wire."""

    max_attempts: int | None = None
    initial_delay_ms: int | None = None
    backoff_multiplier: float | None = None
    max_delay_ms: int | None = None
    jitter: float | None = None
    retryable_errors: list[str] | None = None
    non_retryable_errors: list[str] | None = None


# --- kind-specific messages -------------------------------------------------------------------------
# Integer timeouts are declared ``int | None``: the public SDK sends nil for an unset step timeout,
# which means "use the server default", exactly like 0.


class Start(msgspec.Struct):
    input: Any = None
    timeout_ms: int | None = 0


class Step(msgspec.Struct):
    step_name: str
    timeout_ms: int | None = 0


class Event(msgspec.Struct):
    event_name: str
    payload: Any = None
    timeout_ms: int | None = 0
    event_seq_id: int = 0


class Cancel(msgspec.Struct):
    reason: str | None = ""


class Terminate(msgspec.Struct):
    reason: str | None = ""


class StepPickedUp(msgspec.Struct):
    step_name: str
    worker_id: str
    timestamp: datetime


class Complete(msgspec.Struct):
    result: Any = None


class Fail(msgspec.Struct):
    error: ErrorDetails


class FailStep(msgspec.Struct):
    step_name: str
    error: ErrorDetails


class Wait(msgspec.Struct):
    timeout_ms: int | None = 0
    timeout_step_name: str | None = ""


class StepTimeoutFired(msgspec.Struct, omit_defaults=True):
    step_name: str = ""
    original_directive_id: str = ""
    # Ours (the engine makes and reads these directives itself): the fired timer's window and the task
    # it guards, so the engine can tell a step that ran out of time from one whose time was eaten by an
    # outage, and arm the timer again for the latter.
    armed_at: datetime | None = None
    deadline: datetime | None = None
    armed_by: DirectiveWire | None = None


class WaitTimeout(msgspec.Struct):
    timeout_step_name: str = ""
    original_directive_id: str = ""


class WakeFromInbox(msgspec.Struct):
    pass


class RunTimedOut(msgspec.Struct):
    """Ours: the run-level timer fired (only the engine reads it)."""

    timer_id: str = ""


class StepHeld(msgspec.Struct, omit_defaults=True):
    """Ours: a worker's report that its code cannot run the task (a missing handler, parameters that
    no longer bind); the task is handed back, not failed, and the run shows as stuck."""

    step_name: str
    worker_id: str
    reason: str
    detail: str = ""


class ActiveTask(msgspec.Struct, omit_defaults=True):
    """Ours: the kind and message of a run's active dispatch (a worker task or a wait), without the
    envelope's ids and run info: what a run state keeps so that a retry can resume there."""

    k: str
    m: bytes = b""

    @classmethod
    def of(cls, d: Directive) -> ActiveTask:
        return cls(k=str(d.kind), m=msgspec.msgpack.encode(d.msg))

    def message(self) -> DirectiveMessage:
        """The decoded message; ``ValueError``/``msgspec.DecodeError`` when it cannot be."""
        factory = MESSAGE_TYPES.get(self.k)
        if factory is None:
            raise ValueError(f"unknown directive kind {self.k!r}")
        return msgspec.msgpack.decode(self.m or b"\x80", type=factory)  # type: ignore[return-value]

    def directive(self, id: str, timestamp: datetime, run_info: RunInfo) -> Directive:
        return Directive(id=id, timestamp=timestamp, kind=DirectiveKind(self.k), run_info=run_info,
                         msg=self.message())


def step_name_of(msg: object) -> str:
    """The wire name of the step a worker task runs: "start", the step name, or the event name ("" for
    any other message)."""
    if isinstance(msg, Start):
        return "start"
    if isinstance(msg, Step):
        return msg.step_name
    if isinstance(msg, Event):
        return msg.event_name
    return ""


class Resume(msgspec.Struct, omit_defaults=True):
    """Ours: start a run as the retry of ``retry_of``, at the task (or wait) that run ended in."""

    retry_of: str
    task: ActiveTask
    input: Any = None
    last_event_seq_id: int = 0


class StepResult(msgspec.Struct):
    """A worker's report of a finished step; the two nested messages are inline maps, not bins."""

    processed_msg_kind: str
    processed_msg: Any
    worker_id: str | None
    kv_updates: dict[str, Any] | None
    next_msg_kind: str
    next_msg: Any
    duration_ms: int = 0

    def processed(self) -> Start | Step | Event:
        """The executed task's message, typed by ``processed_msg_kind``."""
        if self.processed_msg_kind not in ("start", "step", "event"):
            raise ValueError(f"unknown processed_msg_kind {self.processed_msg_kind!r}")
        return cast("Start | Step | Event",
                    msgspec.convert(self.processed_msg, MESSAGE_TYPES[self.processed_msg_kind]))

    def next(self) -> Step | Wait | Complete | Fail | FailStep:
        """The requested next directive's message, typed by ``next_msg_kind``."""
        if self.next_msg_kind not in ("step", "wait", "complete", "fail", "fail_step"):
            raise ValueError(f"unknown next_msg_kind {self.next_msg_kind!r}")
        return cast("Step | Wait | Complete | Fail | FailStep",
                    msgspec.convert(self.next_msg, MESSAGE_TYPES[self.next_msg_kind]))

    @property
    def processed_step_name(self) -> str:
        """The wire name of the finished step: "start", the step name, or the event name."""
        msg = self.processed()
        if isinstance(msg, Start):
            return "start"
        if isinstance(msg, Step):
            return msg.step_name
        return msg.event_name


MESSAGE_TYPES: dict[str, type[msgspec.Struct]] = {
    DirectiveKind.start: Start,
    DirectiveKind.step: Step,
    DirectiveKind.event: Event,
    DirectiveKind.cancel: Cancel,
    DirectiveKind.terminate: Terminate,
    DirectiveKind.step_picked_up: StepPickedUp,
    DirectiveKind.step_result: StepResult,
    DirectiveKind.complete: Complete,
    DirectiveKind.fail: Fail,
    DirectiveKind.fail_step: FailStep,
    DirectiveKind.wait: Wait,
    DirectiveKind.step_timeout: StepTimeoutFired,
    DirectiveKind.wait_timeout: WaitTimeout,
    DirectiveKind.wake_from_inbox: WakeFromInbox,
    DirectiveKind.run_timeout: RunTimedOut,
    DirectiveKind.step_held: StepHeld,
    DirectiveKind.resume: Resume,
}

DirectiveMessage = (
    Start | Step | Event | Cancel | Terminate | StepPickedUp | StepResult | Complete | Fail | FailStep
    | Wait | StepTimeoutFired | WaitTimeout | WakeFromInbox | RunTimedOut | StepHeld | Resume
)


class DirectiveWire(msgspec.Struct, omit_defaults=True):
    """The envelope as it is on the wire (also embedded inline in run states and timers)."""

    id: str
    k: str
    t: datetime
    r: RunInfo
    m: bytes | None = None
    a: int = 0
    kv: dict[str, Any] | None = None


class Directive(msgspec.Struct):
    """A decoded directive. Handlers return one of these, built by ``ctx.next``."""

    id: str
    timestamp: datetime
    kind: DirectiveKind
    run_info: RunInfo
    msg: DirectiveMessage
    attempt: int = 0
    kv_revs: dict[str, Any] | None = None

    @property
    def step_name(self) -> str:
        """The wire name of the step a worker task runs ("" for any other kind)."""
        return step_name_of(self.msg)

    def to_wire(self) -> DirectiveWire:
        return DirectiveWire(
            id=self.id,
            k=str(self.kind),
            t=self.timestamp,
            r=self.run_info,
            m=msgspec.msgpack.encode(self.msg),
            a=self.attempt,
            kv=self.kv_revs or None,
        )

    @classmethod
    def from_wire(cls, wire: DirectiveWire) -> Directive:
        factory = MESSAGE_TYPES.get(wire.k)
        if factory is None:
            raise ValueError(f"unknown directive kind {wire.k!r}")
        msg = msgspec.msgpack.decode(wire.m or b"\x80", type=factory)
        return cls(
            id=wire.id,
            timestamp=wire.t,
            kind=DirectiveKind(wire.k),
            run_info=wire.r,
            msg=msg,  # type: ignore[arg-type]
            attempt=wire.a,
            kv_revs=wire.kv,
        )


_wire_decoder = msgspec.msgpack.Decoder(DirectiveWire)


def encode_directive(directive: Directive) -> bytes:
    return msgspec.msgpack.encode(directive.to_wire())


def decode_directive(data: bytes) -> Directive:
    """Decode an envelope and its message; raises ``msgspec.DecodeError``/``ValueError`` on bad input."""
    return Directive.from_wire(_wire_decoder.decode(data))
