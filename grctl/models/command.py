"""Commands sent by request/reply to the engine API (and engine → worker), and API responses
(docs/protocol.md#commands-and-api-replies)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from grctl import settings
from grctl.models.common import RunInfo
from grctl.models.schedule import BackfillCmd, DeclareCmd, ScheduleCmd, ScheduleListCmd, WithdrawCmd


class CommandKind(StrEnum):
    run_start = "run.start"
    run_describe = "run.describe"
    run_event = "run.event"
    run_cancel = "run.cancel"
    run_terminate = "run.terminate"
    run_list = "run.list"  # ours
    run_retry = "run.retry"  # ours: resume an ended run as a new run of its workflow id
    catalog_check = "catalog.check"  # ours: what live runs need that a handler catalog lacks
    worker_register = "worker.register"
    worker_terminate_run = "worker.terminate_run"
    # ours: schedules (docs/protocol.md#schedules)
    schedule_declare = "schedule.declare"
    schedule_list = "schedule.list"
    schedule_trigger = "schedule.trigger"
    schedule_pause = "schedule.pause"
    schedule_resume = "schedule.resume"
    schedule_backfill = "schedule.backfill"
    schedule_withdraw = "schedule.withdraw"


class StartCmd(msgspec.Struct):
    run_info: RunInfo
    input: Any = None


class DelayedStartCmd(StartCmd):
    """Ours: ``run.start`` with ``start_at`` (the key is sent only for a delayed start, so an ordinary
    start is the public SDK's bytes; the public server ignores the key and starts at once)."""

    start_at: datetime | None = None


class DescribeCmd(msgspec.Struct):
    wf_id: str


class EventCmd(msgspec.Struct):
    wf_id: str
    event_name: str
    payload: Any = None


class CancelCmd(msgspec.Struct):
    wf_id: str
    reason: str | None = None


class TerminateCmd(msgspec.Struct):
    wf_id: str
    reason: str | None = None


class RetryCmd(msgspec.Struct, omit_defaults=True):
    """Ours: retry the run ``run_id`` of ``wf_id`` (default: its latest run); the reply's payload is the
    new run's RunInfo."""

    wf_id: str
    run_id: str = ""
    reason: str = ""


class ListCmd(msgspec.Struct, omit_defaults=True):
    """Ours: the stored runs that match, newest first (the reply's payload is a list of RunInfo)."""

    statuses: list[str] = msgspec.field(default_factory=list)
    wf_type: str = ""
    since: datetime | None = None
    limit: int = settings.LIST_LIMIT
    stuck: bool = False  # only runs held by a mismatch between code and run


class EventDef(msgspec.Struct):
    name: str
    timeout_ms: int = 0


class WorkflowTypeDef(msgspec.Struct):
    type: str
    start_step: str = ""
    steps: list[str] = msgspec.field(default_factory=list)
    events: list[EventDef] = msgspec.field(default_factory=list)
    queries: list[str] = msgspec.field(default_factory=list)
    start_step_timeout_ms: int = 0


class CatalogCheckCmd(msgspec.Struct, omit_defaults=True):
    """Ours: would workers with the catalog ``types`` (replacing workers that served ``dropped`` types
    too) strand live runs? The reply's payload is a list of ``CatalogNeed``; empty: none would."""

    types: list[WorkflowTypeDef]
    dropped: list[str] = msgspec.field(default_factory=list)


class CatalogNeed(msgspec.Struct, omit_defaults=True):
    """A handler (or a whole workflow type: ``kind`` "type") live runs need that the catalog drops;
    ``runs`` names some of them (``wf_id/run_id``), ``count`` says how many there are."""

    wf_type: str
    kind: str  # type, start, step, event, timeout
    handler: str
    count: int
    runs: list[str] = msgspec.field(default_factory=list)


class RegisterCmd(msgspec.Struct):
    worker_id: str
    types: list[WorkflowTypeDef]


class WorkerTerminateRunCmd(msgspec.Struct):
    run_id: str


COMMAND_TYPES: dict[str, type[msgspec.Struct]] = {
    CommandKind.run_start: DelayedStartCmd,
    CommandKind.run_describe: DescribeCmd,
    CommandKind.run_event: EventCmd,
    CommandKind.run_cancel: CancelCmd,
    CommandKind.run_terminate: TerminateCmd,
    CommandKind.run_list: ListCmd,
    CommandKind.run_retry: RetryCmd,
    CommandKind.catalog_check: CatalogCheckCmd,
    CommandKind.worker_register: RegisterCmd,
    CommandKind.worker_terminate_run: WorkerTerminateRunCmd,
    CommandKind.schedule_declare: DeclareCmd,
    CommandKind.schedule_list: ScheduleListCmd,
    CommandKind.schedule_trigger: ScheduleCmd,
    CommandKind.schedule_pause: ScheduleCmd,
    CommandKind.schedule_resume: ScheduleCmd,
    CommandKind.schedule_backfill: BackfillCmd,
    CommandKind.schedule_withdraw: WithdrawCmd,
}

CommandMessage = (
    StartCmd | DescribeCmd | EventCmd | CancelCmd | TerminateCmd | ListCmd | RetryCmd | CatalogCheckCmd
    | RegisterCmd | WorkerTerminateRunCmd
)


class CommandWire(msgspec.Struct):
    id: str
    k: str
    m: bytes | None
    t: datetime
    s: str = ""


class Command(msgspec.Struct):
    id: str
    kind: CommandKind
    timestamp: datetime
    msg: Any
    sender_id: str = ""


_wire_decoder = msgspec.msgpack.Decoder(CommandWire)


class _KindOnly(msgspec.Struct):
    k: str = ""


_kind_decoder = msgspec.msgpack.Decoder(_KindOnly)


def command_kind(data: bytes) -> str:
    """The kind of an encoded command without decoding the rest ("invalid" when it cannot be read)."""
    try:
        return _kind_decoder.decode(data).k or "invalid"
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "invalid"


def encode_command(cmd: Command) -> bytes:
    if not cmd.sender_id:
        raise ValueError("a command needs a sender id")
    wire = CommandWire(
        id=cmd.id, k=str(cmd.kind), m=msgspec.msgpack.encode(cmd.msg), t=cmd.timestamp, s=cmd.sender_id
    )
    return msgspec.msgpack.encode(wire)


def decode_command(data: bytes) -> Command:
    """Decode an envelope and its message; raises on an unknown kind or a malformed message."""
    wire = _wire_decoder.decode(data)
    factory = COMMAND_TYPES.get(wire.k)
    if factory is None:
        raise ValueError(f"unknown command kind {wire.k!r}")
    return Command(
        id=wire.id,
        kind=CommandKind(wire.k),
        timestamp=wire.t,
        msg=msgspec.msgpack.decode(wire.m or b"\x80", type=factory),
        sender_id=wire.s,
    )


# --- API responses -----------------------------------------------------------------------------------

ERR_UNKNOWN_COMMAND = 4000
ERR_ALREADY_RUNNING = 4001
ERR_RUN_NOT_FOUND = 4002
ERR_RUN_FINISHED = 4003
ERR_TYPE_NOT_REGISTERED = 4004
ERR_INVALID_MESSAGE = 4005
ERR_INVALID_NAME = 4006  # ours: a name that cannot be a subject token
ERR_NOT_RETRYABLE = 4007  # ours: the run is not in an ended state a retry resumes (or not the latest)
ERR_SCHEDULE_NOT_FOUND = 4008  # ours: no schedule with this id is in force
ERR_NOT_PERMITTED = 4009  # ours: a worker's request about a run its sending run has no part in
ERR_INTERNAL = 5000
ERR_BUSY = 5030  # ours: the engine is saturated; retry after a pause (the request was not acted on)
ERR_STORAGE_FULL = 5070  # ours: the stream's storage is full; nothing was stored

# Ours: a reply header by which the engine says it announces run outcomes on core NATS
# (``grctl_outcome.{wf_id}.{run_id}``), so a client may wait for them instead of watching the history.
H_OUTCOME = "Grctl-Outcome"
OUTCOME_NOTIFY = "notify"


class APIError(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    detail: str = ""


class APIResponse(msgspec.Struct, omit_defaults=True):
    """Reply to every API request; absent keys are left out, as the Go server does."""

    success: bool
    payload: Any = None
    error: APIError | None = None

    def run_info(self) -> RunInfo:
        return msgspec.convert(self.payload, RunInfo)


def encode_response(resp: APIResponse) -> bytes:
    return msgspec.msgpack.encode(resp)


def decode_response(data: bytes) -> APIResponse:
    return msgspec.msgpack.decode(data, type=APIResponse)
