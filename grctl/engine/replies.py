"""Error replies of the engine API, and the check that names can be subject tokens (4006)."""

from __future__ import annotations

from grctl.models.command import ERR_INVALID_NAME, ERR_RUN_NOT_FOUND, APIError, APIResponse
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
