"""Request/reply to the engine API (``grctl_api.workflow.{wf_id}``) and the mapping of its error codes
to exceptions (PROTOCOL.md §4.4.3)."""

from __future__ import annotations

from typing import Any

from ulid import ULID

from grctl.models.command import (
    ERR_ALREADY_RUNNING,
    ERR_RUN_FINISHED,
    ERR_RUN_NOT_FOUND,
    ERR_TYPE_NOT_REGISTERED,
    APIResponse,
    Command,
    CommandKind,
    decode_response,
    encode_command,
)
from grctl.models.common import utcnow
from grctl.models.errors import (
    WorkflowAlreadyRunningError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowRunFinishedError,
    WorkflowTypeNotRegisteredError,
)
from grctl.nats import subjects
from grctl.nats.connection import Connection

API_TIMEOUT = 5.0

_ERRORS: dict[int, type[WorkflowError]] = {
    ERR_ALREADY_RUNNING: WorkflowAlreadyRunningError,
    ERR_RUN_NOT_FOUND: WorkflowNotFoundError,
    ERR_RUN_FINISHED: WorkflowRunFinishedError,
    ERR_TYPE_NOT_REGISTERED: WorkflowTypeNotRegisteredError,
}


def check_name(what: str, value: str) -> None:
    reason = subjects.invalid_token_reason(value)
    if reason:
        raise ValueError(f"{what} {value!r} {reason}")


def raise_for(response: APIResponse, operation: str, wf_id: str) -> None:
    """Raise the exception a failed reply stands for; do nothing on success."""
    if response.success:
        return
    err = response.error
    code = err.code if err else 0
    message = err.message if err else "unknown error"
    if err and err.detail:
        message = f"{message} ({err.detail})"
    cls = _ERRORS.get(code, WorkflowError)
    exc = cls(f"{operation} {wf_id!r} failed (code={code}): {message}")
    exc.code = code  # type: ignore[attr-defined]
    raise exc


async def call(connection: Connection, wf_id: str, kind: CommandKind, msg: Any, sender_id: str,
               timeout: float = API_TIMEOUT) -> APIResponse:
    """Send one command for ``wf_id`` and raise on an error reply."""
    cmd = Command(id=str(ULID()), kind=kind, timestamp=utcnow(), msg=msg, sender_id=sender_id)
    reply = await connection.nc.request(subjects.api_workflow(wf_id), encode_command(cmd), timeout=timeout)
    response = decode_response(reply.data)
    raise_for(response, str(kind), wf_id)
    return response
