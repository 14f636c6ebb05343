"""Trying again: one backoff formula for every retry loop of the project, which errors are worth a
retry, and a retry loop bounded by a time budget.

The delay grows geometrically from ``initial`` by ``factor`` up to ``cap``, with a random spread of
``jitter`` (a fraction of the delay) so that many processes retrying after the same outage do not
come back in lock step.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.1
    factor: float = 2.0
    cap: float = 5.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.initial * self.factor ** max(attempt - 1, 0), self.cap)
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, base)


# Transport trouble (a reconnecting connection, a JetStream API that is not answering yet). The cap is
# short because what ends such trouble (a reconnection, a leader elected) is not seen otherwise: the
# time from its end to the next attempt adds to the pause, at every hop of a run. Attempts that fail
# cost little: the connection or the server refuses them at once.
TRANSPORT = Backoff(initial=0.1, factor=2.0, cap=1.0)
# A fetch loop whose consumer cannot be reached (its leader being elected, say).
FETCH = Backoff(initial=0.1, factor=2.0, cap=0.5)
# A crashed child process of grctld (0.5 s, 1 s, 2 s ... 30 s).
RESTART = Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.0)


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


async def retrying(operation: Callable[[], Awaitable[T]], budget: float, backoff: Backoff = TRANSPORT,
                   what: str = "operation", warn: bool = False) -> T:
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
