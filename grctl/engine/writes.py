"""What a transition writes: typed records, each turned into one stream message of the commit batch.

The planner returns these (so tests can read them without decoding bytes); the store encodes them with
``to_msg`` in the order given. Subjects and encodings follow the public protocol's records; the ones
marked "ours" are this engine's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from grctl.models.common import ErrorDetails, RunInfo
from grctl.models.directive import Directive, encode_directive
from grctl.models.history import HistoryEvent, encode_history
from grctl.models.records import BackgroundTask, BgTaskKind, PurgeRun, RunState, Timer
from grctl.nats import subjects
from grctl.nats.jetstream import (
    H_EXPECTED_LAST_SUBJECT_SEQ,
    H_MSG_ID,
    OutMsg,
    schedule_headers,
)

H_SCHEDULER = "Nats-Scheduler"
H_SCHEDULE_NEXT = "Nats-Schedule-Next"


def _cancel_headers(timer_subject: str) -> dict[str, str]:
    """Headers that make the server purge the schedule on ``timer_subject`` atomically with this message
    (the pair a fired schedule carries; docs/protocol.md#jetstream-features-used)."""
    if not timer_subject:
        return {}
    return {H_SCHEDULER: timer_subject, H_SCHEDULE_NEXT: "purge"}


def timer_subject(wf_id: str, timer_id: str) -> str:
    """The schedule subject of a timer; its kind is the first part of its id (``{kind}.{directive id}``)."""
    kind = timer_id.split(".", 1)[0]
    return subjects.timer(wf_id, kind, timer_id)


@dataclass(frozen=True, slots=True)
class HistoryRec:
    event: HistoryEvent

    def to_msg(self) -> OutMsg:
        return OutMsg(subjects.history(self.event.wf_id, self.event.run_id), encode_history(self.event))


@dataclass(frozen=True, slots=True)
class InfoRec:
    """A run-info record; ``cancel_timer`` (a timer subject) is cancelled in the same commit."""

    info: RunInfo
    cancel_timer: str = ""

    def to_msg(self) -> OutMsg:
        i = self.info
        return OutMsg(subjects.run_info(i.wf_type, i.wf_id, i.id), msgspec.msgpack.encode(i),
                      _cancel_headers(self.cancel_timer))


@dataclass(frozen=True, slots=True)
class StateRec:
    """A run-state record. ``expected_seq`` is the compare-and-swap (0 = no record may exist yet;
    None = no check, used for a second write of the same subject in one batch)."""

    state: RunState
    expected_seq: int | None
    cancel_timer: str = ""

    def to_msg(self) -> OutMsg:
        headers = _cancel_headers(self.cancel_timer)
        if self.expected_seq is not None:
            headers[H_EXPECTED_LAST_SUBJECT_SEQ] = str(self.expected_seq)
        s = self.state
        return OutMsg(subjects.run_state(s.wf_id, s.run_id), msgspec.msgpack.encode(s), headers)


@dataclass(frozen=True, slots=True)
class TimerRec:
    """A scheduled message that fires onto ``grctl_timers_fired`` at ``timer.expires``."""

    timer: Timer

    @property
    def subject(self) -> str:
        return subjects.timer(self.timer.wfid, self.timer.k, self.timer.id)

    def to_msg(self) -> OutMsg:
        return OutMsg(self.subject, msgspec.msgpack.encode(self.timer),
                      schedule_headers(self.timer.expires, subjects.TIMERS_FIRED))


@dataclass(frozen=True, slots=True)
class RetentionRec:
    """Ours: a scheduled message that becomes a ``purge_run`` background task at ``expires``, removing
    the records of a finished run once its retention has passed."""

    wf_type: str
    wf_id: str
    run_id: str
    expires: datetime

    def to_msg(self) -> OutMsg:
        payload = PurgeRun(wf_type=self.wf_type, wf_id=self.wf_id, run_id=self.run_id)
        task = BackgroundTask(kind=BgTaskKind.purge_run, deduplication_id=f"bg.purge_run.{self.run_id}",
                              payload=msgspec.msgpack.encode(payload))
        return OutMsg(subjects.retention_timer(self.wf_id, self.run_id), msgspec.msgpack.encode(task),
                      schedule_headers(self.expires, subjects.BG_TASK))


@dataclass(frozen=True, slots=True)
class TaskRec:
    """A worker task: the directive on ``grctl_worker_task.{wf_type}.{wf_id}.{run_id}``."""

    directive: Directive

    def to_msg(self) -> OutMsg:
        r = self.directive.run_info
        return OutMsg(subjects.worker_task(r.wf_type, r.wf_id, r.id), encode_directive(self.directive))


@dataclass(frozen=True, slots=True)
class DirectiveRec:
    """A directive for the engine itself, deduplicated by its id."""

    directive: Directive

    def to_msg(self) -> OutMsg:
        r = self.directive.run_info
        return OutMsg(subjects.directive(r.wf_type, r.wf_id, r.id), encode_directive(self.directive),
                      {H_MSG_ID: self.directive.id})


@dataclass(frozen=True, slots=True)
class BgRec:
    kind: str
    dedup_id: str
    payload: msgspec.Struct

    def to_msg(self) -> OutMsg:
        task = BackgroundTask(kind=self.kind, deduplication_id=self.dedup_id,
                              payload=msgspec.msgpack.encode(self.payload))
        return OutMsg(subjects.BG_TASK, msgspec.msgpack.encode(task), {H_MSG_ID: self.dedup_id})


@dataclass(frozen=True, slots=True)
class KVRec:
    wf_id: str
    run_id: str
    key: str
    value: Any

    def to_msg(self) -> OutMsg:
        return OutMsg(subjects.kv(self.wf_id, self.run_id, self.key), msgspec.msgpack.encode(self.value))


@dataclass(frozen=True, slots=True)
class InboxRec:
    """An accepted event, appended to the workflow id's inbox."""

    directive: Directive

    def to_msg(self) -> OutMsg:
        return OutMsg(subjects.inbox(self.directive.run_info.wf_id), encode_directive(self.directive))


@dataclass(frozen=True, slots=True)
class InputRec:
    wf_id: str
    run_id: str
    value: Any

    def to_msg(self) -> OutMsg:
        return OutMsg(subjects.run_input(self.wf_id, self.run_id), msgspec.msgpack.encode(self.value))


@dataclass(frozen=True, slots=True)
class OutputRec:
    wf_id: str
    run_id: str
    value: Any

    def to_msg(self) -> OutMsg:
        return OutMsg(subjects.run_output(self.wf_id, self.run_id), msgspec.msgpack.encode(self.value))


@dataclass(frozen=True, slots=True)
class ErrorRec:
    wf_id: str
    run_id: str
    error: ErrorDetails

    def to_msg(self) -> OutMsg:
        return OutMsg(subjects.run_error(self.wf_id, self.run_id), msgspec.msgpack.encode(self.error))


Record = (
    HistoryRec | InfoRec | StateRec | TimerRec | TaskRec | DirectiveRec | BgRec | KVRec | InboxRec
    | InputRec | OutputRec | ErrorRec | RetentionRec
)


def to_msgs(records: list[Record]) -> list[OutMsg]:
    return [r.to_msg() for r in records]


def ms_between(start: datetime | None, end: datetime) -> int:
    """Whole milliseconds from ``start`` to ``end``; 0 when there is no start (or it is later)."""
    if start is None:
        return 0
    return max(0, int((end - start).total_seconds() * 1000))
