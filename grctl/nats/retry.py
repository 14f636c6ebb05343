"""Trying again: which errors are worth a retry, and a retry loop bounded by a time budget. The
schedules (``Backoff``) and their values are in ``grctl.settings``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors

from grctl import settings
from grctl.settings import Backoff

log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """Is ``exc`` transport trouble that may pass (a reconnection, a timeout, a stream that has no
    leader for a moment), as opposed to an answer (a refusal, bad data)?"""
    if isinstance(exc, nats.errors.MaxPayloadError | nats.errors.BadSubjectError | nats.errors.BadHeaderError
                  | nats.errors.AuthorizationError):
        return False
    if isinstance(exc, nats.errors.TimeoutError | nats.errors.NoRespondersError
                  | nats.errors.StaleConnectionError | nats.errors.OutboundBufferLimitError
                  | nats.errors.ConnectionReconnectingError | nats.errors.ConnectionClosedError
                  | nats.errors.SlowConsumerError | nats.errors.FlushTimeoutError):
        return True
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return True
    code = getattr(exc, "code", None)
    if code == 503:  # e.g. our JetStreamError: "JetStream not available", "no stream answered"
        return True
    return isinstance(exc, TimeoutError | ConnectionError)


def log_failure(logger: logging.Logger, what: str, exc: BaseException, level: int = logging.WARNING) -> None:
    """Log that ``what`` failed in a loop that will try again: transport trouble in one line at
    ``level``; anything else is a bug, logged as an error with its traceback."""
    if is_transient(exc):
        logger.log(level, "%s failed: %s", what, exc)
    else:
        logger.error("%s failed", what, exc_info=exc)


T = TypeVar("T")


async def retrying(operation: Callable[[], Awaitable[T]], budget: float,
                   backoff: Backoff = settings.TRANSPORT_BACKOFF, what: str = "operation",
                   warn: bool = False) -> T:
    """Run ``operation``, trying again after transient failures (``is_transient``) for up to ``budget``
    seconds; the last transient failure is raised when the time is up, anything else at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except Exception as exc:
            delay = backoff.delay(attempt)
            if not is_transient(exc) or loop.time() + delay > deadline:
                raise
            log.log(logging.WARNING if warn else logging.DEBUG, "%s failed (%s: %s); trying again in %.2fs",
                    what, type(exc).__name__, exc, delay)
        await asyncio.sleep(delay)
