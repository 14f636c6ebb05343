"""Retry policy arithmetic for tasks (docs/protocol.md#tasks-and-retries): which errors retry, how long to
wait, and how a recorded failure becomes an exception again."""

from __future__ import annotations

import importlib
import logging
import random

from grctl import settings
from grctl.models.common import ErrorDetails
from grctl.models.directive import RetryPolicy

log = logging.getLogger("grctl.worker")



def max_attempts(policy: RetryPolicy | None) -> int:
    return (policy.max_attempts if policy else None) or 1


def is_retryable(error: BaseException, policy: RetryPolicy) -> bool:
    """The class-name filters: only ``retryable_errors`` → must be listed; only ``non_retryable_errors``
    → must not be; both → listed in the first and not in the second; neither → every error retries."""
    name = type(error).__name__
    allow, deny = policy.retryable_errors, policy.non_retryable_errors
    if allow is not None and name not in allow:
        return False
    return not (deny is not None and name in deny)


def should_retry(error: BaseException, policy: RetryPolicy | None, attempt: int) -> bool:
    return policy is not None and attempt < max_attempts(policy) and is_retryable(error, policy)


def backoff_delay_ms(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> int:
    """Delay after failed attempt ``attempt`` (1-based): initial × multiplier^(attempt−1), capped at the
    maximum, plus ``uniform(0, jitter) × delay`` when jitter is set."""
    initial = policy.initial_delay_ms or settings.TASK_RETRY_INITIAL_MS
    multiplier = policy.backoff_multiplier or settings.TASK_RETRY_MULTIPLIER
    cap = policy.max_delay_ms or settings.TASK_RETRY_MAX_MS
    delay = min(initial * multiplier ** (attempt - 1), cap)
    if policy.jitter:
        delay += (rng or random).uniform(0, policy.jitter) * delay
    return int(delay)


def rebuild_error(error: ErrorDetails) -> Exception:
    """The exception a recorded task failure stands for: ``Class(message)`` from its qualified type,
    else ``RuntimeError(message)``."""
    if error.qualified_type and "." in error.qualified_type:
        module_name, _, qualname = error.qualified_type.rpartition(".")
        try:
            cls: object = importlib.import_module(module_name)
            for part in qualname.split("."):
                cls = getattr(cls, part)
            if isinstance(cls, type) and issubclass(cls, Exception):
                return cls(error.message)
        except Exception as exc:  # not importable here, or its constructor wants more than a message
            log.debug("recorded error type %s cannot be rebuilt (%s); raising RuntimeError instead",
                      error.qualified_type, exc)
    return RuntimeError(error.message)
