"""Which commands the engine accepts on which API subject.

The public protocol routes every command by the kind inside it, whatever the subject under
``grctl_api.>``. NATS permissions, though, can only tell subjects apart: so that a worker's or a
reader's credential cannot terminate a run, our programs send such requests on subjects that say what
they may ask (``grctl_api.worker``, ``grctl_api.child.{wf_type}.{wf_id}.{run_id}``,
``grctl_api.describe.{wf_id}``, ``grctl_api.runs``, ``grctl_api.typed.{wf_type}.{wf_id}``), and the
engine refuses any other kind there. ``grctl_api.workflow.{wf_id}`` and any other subject keep accepting
every kind, as the public protocol says.

A worker's subject names the run that sends (its type first: NATS gives a worker host its own types'
subjects only). There the engine takes a start of a child of that run, or an event to that run's parent
workflow, and only while that run exists and has not ended (one read of its run info, ``check``): a
worker's credential can neither act in the name of a run that does not exist or has ended, nor send an
event to a workflow that is not its run's parent.
"""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client as NATSClient

from grctl.models.command import (
    ERR_NOT_PERMITTED,
    ERR_RUN_NOT_FOUND,
    ERR_UNKNOWN_COMMAND,
    Command,
    CommandKind,
)
from grctl.models.common import RunInfo
from grctl.models.records import LatestRun
from grctl.nats import subjects
from grctl.nats.direct import get_last

log = logging.getLogger(__name__)
_latest = msgspec.msgpack.Decoder(LatestRun)
_info = msgspec.msgpack.Decoder(RunInfo)

# Exact subjects and the kinds they carry.
_EXACT: dict[str, frozenset[CommandKind]] = {
    subjects.API_WORKER: frozenset({CommandKind.worker_register}),
    # queries that change nothing: listing runs, and what live runs need of a new worker's code
    subjects.API_RUNS: frozenset({CommandKind.run_list, CommandKind.catalog_check}),
}
# Subject prefixes followed by the workflow id the command must be about.
_PER_WORKFLOW: dict[str, frozenset[CommandKind]] = {
    subjects.API_DESCRIBE_PREFIX: frozenset({CommandKind.run_describe}),
}

# A worker's subject, named by the run that sends: a start of its child, an event to its parent.
_CHILD_KINDS = frozenset({CommandKind.run_start, CommandKind.run_event})
# The run a worker's subject names: (workflow type, workflow id, run id).
Sender = tuple[str, str, str]

# An application's subjects name the workflow type too: a start must be of that type, an event must go
# to a workflow of that type (the engine looks the run up: ``typed()``).
_TYPED_KINDS = frozenset({CommandKind.run_start, CommandKind.run_event})


def typed(subject: str) -> tuple[str, str] | None:
    """(workflow type, workflow id) that an application's subject names, or None for other subjects."""
    head, _, rest = subject.partition(f"{subjects.API_TYPED_PREFIX}.")
    if head or not rest:
        return None
    wf_type, _, wf_id = rest.partition(".")
    return (wf_type, wf_id) if wf_type and wf_id else None


def sender(subject: str) -> Sender | None:
    """The run that a worker's subject (``grctl_api.child.{wf_type}.{wf_id}.{run_id}``) names; None for
    other subjects, and for a worker's subject without these three names (which is refused)."""
    head, _, rest = subject.partition(f"{subjects.API_CHILD_PREFIX}.")
    names = [] if head else rest.split(".")
    return (names[0], names[1], names[2]) if len(names) == 3 and all(names) else None


def _started(cmd: Command) -> RunInfo | None:
    """The run a start (at once or delayed) would create."""
    info = getattr(cmd.msg, "run_info", None)
    return info if isinstance(info, RunInfo) else None


def _about(cmd: Command) -> str:
    """The workflow id a run command is about ("" when it names none)."""
    started = _started(cmd)
    return started.wf_id if started is not None else str(getattr(cmd.msg, "wf_id", ""))


def refusal(subject: str, cmd: Command) -> str | None:
    """Why ``cmd`` is not accepted on ``subject``, or None when it is. What needs a stored record is
    checked by ``check``: an event on an application's subject must go to a workflow of the subject's
    type; on a worker's subject the sending run must be live (``sender_refusal``)."""
    named = typed(subject)
    if named is not None:
        wf_type, wf_id = named
        started = _started(cmd)
        wrong_type = started is not None and started.wf_type != wf_type
        return _kind_and_id(subject, _TYPED_KINDS, wf_id, cmd) or (
            f"{subject} starts workflows of type {wf_type!r} only" if wrong_type else None)
    if subject.startswith(f"{subjects.API_CHILD_PREFIX}."):
        return _child_refusal(subject, cmd)
    kinds = _EXACT.get(subject)
    wf_id = ""
    if kinds is None:
        prefix, _, wf_id = subject.rpartition(".")
        kinds = _PER_WORKFLOW.get(prefix)
        if kinds is None:
            return None
    return _kind_and_id(subject, kinds, wf_id, cmd)


def _child_refusal(subject: str, cmd: Command) -> str | None:
    """Why a worker's ``cmd`` is not accepted on its ``subject``, before the sending run is read."""
    run = sender(subject)
    if run is None:
        shape = subjects.api_child("{wf_type}", "{wf_id}", "{run_id}")
        return f"{subject} does not name the sending run ({shape})"
    started = _started(cmd)
    why = _kind_and_id(subject, _CHILD_KINDS, "", cmd)
    if why or started is None:
        return why
    if not started.parent_run_id:
        return f"{subject} starts child workflows only (the start names no parent run)"
    parent = (started.parent_wf_type or "", started.parent_wf_id or "", started.parent_run_id)
    if parent != run:
        return f"{subject} starts children of {_run_name(run)} only, not of {_run_name(parent)}"
    return None


def _run_name(run: Sender) -> str:
    wf_type, wf_id, run_id = run
    return f"run {run_id!r} of {wf_type} workflow {wf_id!r}"


def sender_refusal(run: Sender, info: RunInfo | None, cmd: Command) -> str | None:
    """Why a worker's ``cmd``, which ``refusal`` let through, is not taken from the sending ``run``
    whose stored run info is ``info`` (None: there is none); None when it is taken."""
    role = "parent run" if cmd.kind == CommandKind.run_start else "sending run"
    if info is None:
        return f"the {role}, {_run_name(run)}, does not exist"
    if info.is_terminal:
        return f"the {role}, {_run_name(run)}, has ended ({info.status})"
    target = str(getattr(cmd.msg, "wf_id", ""))
    if cmd.kind == CommandKind.run_event and target != info.parent_wf_id:
        parent = repr(info.parent_wf_id) if info.parent_wf_id else "it has none"
        return (f"an event from {_run_name(run)} goes to its parent workflow only ({parent}), "
                f"not to {target!r}")
    return None


def _kind_and_id(subject: str, kinds: frozenset[CommandKind], wf_id: str, cmd: Command) -> str | None:
    if cmd.kind not in kinds:
        return f"{cmd.kind} is not accepted on {subject} (it takes {', '.join(sorted(kinds))})"
    if wf_id and _about(cmd) != wf_id:
        return f"{subject} takes commands about workflow {wf_id!r} only, not {_about(cmd)!r}"
    return None


async def check(nc: NATSClient, subject: str, cmd: Command) -> tuple[int, str, str] | None:
    """The error (code, message, detail) the engine answers ``cmd`` on ``subject`` with, or None when it
    is taken. An event on an application's subject goes to a workflow of the subject's type only: to
    the application, another type's workflow does not exist. On a worker's subject, one direct get of
    the sending run's info: a run that does not exist or has ended, or an event to a workflow that is
    not the run's parent, is answered 4009."""
    why = refusal(subject, cmd)
    if why:
        log.warning("API request refused (sender %s): %s", cmd.sender_id[:128], why)
        return ERR_UNKNOWN_COMMAND, why, ""
    named = typed(subject)
    if named is not None and cmd.kind == CommandKind.run_event:
        stored = await get_last(nc, subjects.latest(named[1]))
        if stored is None or _latest.decode(stored.data).wf_type != named[0]:
            return ERR_RUN_NOT_FOUND, "Workflow run not found", "no run of this workflow type"
    run = sender(subject)
    if run is not None:
        stored = await get_last(nc, subjects.run_info(*run))
        why = sender_refusal(run, _info.decode(stored.data) if stored is not None else None, cmd)
        if why:
            log.warning("API request refused (sender %s) on %s: %s", cmd.sender_id[:128], subject[:256], why)
            return ERR_NOT_PERMITTED, "Not permitted", why
    return None
