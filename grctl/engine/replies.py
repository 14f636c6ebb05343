"""Error replies of the engine API, the check that names can be subject tokens (4006), and the id a
command's directive takes."""

from __future__ import annotations

from ulid import ULID

from grctl import settings
from grctl.models.command import (
    ERR_BUSY,
    ERR_INVALID_NAME,
    ERR_RUN_FINISHED,
    ERR_RUN_NOT_FOUND,
    ERR_TYPE_NOT_REGISTERED,
    ERR_UNKNOWN_COMMAND,
    APIError,
    APIResponse,
    Command,
)
from grctl.models.directive import DirectiveKind
from grctl.nats import subjects


def fail(code: int, message: str, detail: str = "") -> APIResponse:
    return APIResponse(success=False, error=APIError(code=code, message=message, detail=detail))


def not_found(detail: str) -> APIResponse:
    return fail(ERR_RUN_NOT_FOUND, "Workflow run not found", detail)


def check_names(*named: tuple[str, str]) -> APIResponse | None:
    """A 4006 reply for the first value that cannot be a subject token, else None."""
    for what, value in named:
        reason = subjects.invalid_token_reason(value)
        if reason:
            shown = value if len(value) <= 64 else f"{value[:61]}..."
            return fail(ERR_INVALID_NAME, f"Invalid {what}", f"{what} {shown!r} {reason}")
    return None


FINISHED = fail(ERR_RUN_FINISHED, "Workflow run has already finished and cannot accept new commands",
                "workflow run is in a terminal state")
NOT_REGISTERED = fail(ERR_TYPE_NOT_REGISTERED, "Workflow type not registered", "workflow type not registered")
UNKNOWN = fail(ERR_UNKNOWN_COMMAND, "Unknown API command", "unknown API command")
BUSY = fail(ERR_BUSY, "Engine busy", "too many requests at once; retry after a pause")


def directive_id(kind: DirectiveKind, cmd: Command) -> str:
    """The id of the directive a command becomes: derived from the command id when it can be, so that a
    command sent again (a retry after a lost reply) is recognised as a duplicate."""
    if cmd.id and subjects.invalid_id_reason(cmd.id) is None and len(cmd.id) <= settings.MAX_NAME_BYTES:
        return f"{kind}.{cmd.id}"
    return str(ULID())
