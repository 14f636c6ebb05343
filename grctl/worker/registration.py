"""Registering the worker's catalog with the engine before consuming (docs/protocol.md#the-worker):
5 attempts, sleeping 0.5 s × attempt between them — the public SDK's schedule, kept so both fail the
same way against a missing engine; a ``success: false`` reply is retried like a transport error. A user
that may not publish to ``grctl_api.worker`` fails at once (``PermissionDeniedError``), not after 5
request timeouts."""

from __future__ import annotations

import asyncio
import logging

from ulid import ULID

from grctl import settings
from grctl.models.command import (
    Command,
    CommandKind,
    RegisterCmd,
    WorkflowTypeDef,
    decode_response,
    encode_command,
)
from grctl.models.common import utcnow
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.requests import PermissionDeniedError
from grctl.worker.errors import RegistrationError

log = logging.getLogger("grctl.worker")



async def register(connection: Connection, worker_id: str, catalog: list[WorkflowTypeDef],
                   attempts: int | None = None, backoff: float | None = None,
                   request_timeout: float | None = None) -> None:
    attempts = attempts or settings.REGISTER_ATTEMPTS
    backoff = settings.REGISTER_BACKOFF if backoff is None else backoff
    request_timeout = request_timeout or settings.REGISTER_TIMEOUT
    cmd = Command(id=str(ULID()), kind=CommandKind.worker_register, timestamp=utcnow(),
                  msg=RegisterCmd(worker_id=worker_id, types=catalog), sender_id=worker_id)
    data = encode_command(cmd)
    last: str = ""
    for attempt in range(1, attempts + 1):
        try:
            request = connection.nc.request(subjects.API_WORKER, data, timeout=request_timeout)
            reply = await connection.interruptible(request, subjects.API_WORKER)
            response = decode_response(reply.data)
            if response.success:
                log.info("registered workflow types %s as %s", [t.type for t in catalog], worker_id)
                return
            err = response.error
            last = f"engine refused: {err.code} {err.message} {err.detail}".strip() if err else "refused"
        except PermissionDeniedError:
            raise  # an answer, not a passing trouble: the user may not register, and asking again waits
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.warning("registration attempt %d/%d failed: %s", attempt, attempts, last)
        if attempt < attempts:
            await asyncio.sleep(backoff * attempt)
    raise RegistrationError(f"could not register workflow types after {attempts} attempts: {last} "
                            "(is a grctl engine running on this NATS server?)")
