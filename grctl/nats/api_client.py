"""Request/reply to the engine API (``grctl_api.workflow.{wf_id}``) and the mapping of its error codes
to exceptions.

A command is sent again, unchanged (same command id), when no engine answered in time, none is
subscribed right now (an engine restarting) or the engine said it is busy: every command is safe to
repeat (a start carries its run id, the others get their directive id from the command id), so a
retry never does the work twice. Retries use growing pauses and stop after ``budget`` seconds. At most
``settings.API_MAX_OUTSTANDING`` requests of one connection wait for the engine at once; the others
queue here.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

from ulid import ULID

from grctl import settings
from grctl.models.command import (
    ERR_ALREADY_RUNNING,
    ERR_BUSY,
    ERR_NOT_RETRYABLE,
    ERR_RUN_FINISHED,
    ERR_RUN_NOT_FOUND,
    ERR_STORAGE_FULL,
    ERR_TYPE_NOT_REGISTERED,
    H_OUTCOME,
    OUTCOME_NOTIFY,
    APIResponse,
    Command,
    CommandKind,
    decode_response,
    encode_command,
)
from grctl.models.common import utcnow
from grctl.models.errors import (
    StorageFullError,
    WorkflowAlreadyRunningError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowNotRetryableError,
    WorkflowRunFinishedError,
    WorkflowTypeNotRegisteredError,
)
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.retry import is_transient

_ERRORS: dict[int, type[WorkflowError]] = {
    ERR_ALREADY_RUNNING: WorkflowAlreadyRunningError,
    ERR_RUN_NOT_FOUND: WorkflowNotFoundError,
    ERR_RUN_FINISHED: WorkflowRunFinishedError,
    ERR_TYPE_NOT_REGISTERED: WorkflowTypeNotRegisteredError,
    ERR_STORAGE_FULL: StorageFullError,
    ERR_NOT_RETRYABLE: WorkflowNotRetryableError,
}

_gates: weakref.WeakKeyDictionary[Connection, asyncio.Semaphore] = weakref.WeakKeyDictionary()


class EngineBusyError(WorkflowError):
    """The engine stayed too busy to take the command for as long as the caller allowed."""


def raise_for(response: APIResponse, operation: str, wf_id: str) -> None:
    """Raise the exception a failed reply stands for; do nothing on success."""
    if response.success:
        return
    err = response.error
    code = err.code if err else 0
    message = err.message if err else "unknown error"
    if err and err.detail:
        message = f"{message} ({err.detail})"
    cls = _ERRORS.get(code, EngineBusyError if code == ERR_BUSY else WorkflowError)
    exc = cls(f"{operation} {wf_id!r} failed (code={code}): {message}")
    exc.code = code  # type: ignore[attr-defined]
    raise exc


@dataclass(frozen=True, slots=True)
class Reply:
    response: APIResponse
    notifies: bool  # the engine announces run outcomes on core NATS (ours; the public server does not)


def _gate(connection: Connection) -> asyncio.Semaphore:
    gate = _gates.get(connection)
    if gate is None:
        gate = _gates[connection] = asyncio.Semaphore(settings.API_MAX_OUTSTANDING)
    return gate


async def call(connection: Connection, wf_id: str, kind: CommandKind, msg: Any, sender_id: str,
               timeout: float = settings.API_TIMEOUT, budget: float = settings.API_BUDGET,
               subject: str = "") -> Reply:
    """Send one command for ``wf_id`` (again, unchanged, after transient failures for up to ``budget``
    seconds) and raise on an error reply. ``subject``: another API subject than the workflow id's."""
    cmd = Command(id=str(ULID()), kind=kind, timestamp=utcnow(), msg=msg, sender_id=sender_id)
    data = encode_command(cmd)
    subject = subject or subjects.api_workflow(wf_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    attempt = 0
    async with _gate(connection):
        while True:
            attempt += 1
            try:
                reply = await connection.interruptible(connection.nc.request(subject, data, timeout=timeout),
                                                      subject)
                response = decode_response(reply.data)
                if not (response.error is not None and response.error.code == ERR_BUSY):
                    raise_for(response, str(kind), wf_id)
                    notifies = (reply.headers or {}).get(H_OUTCOME) == OUTCOME_NOTIFY
                    return Reply(response, notifies)
                if loop.time() + settings.API_BACKOFF.delay(attempt) > deadline:
                    raise_for(response, str(kind), wf_id)
            except Exception as exc:
                if not is_transient(exc) or loop.time() + settings.API_BACKOFF.delay(attempt) > deadline:
                    raise
            await asyncio.sleep(settings.API_BACKOFF.delay(attempt))
