"""Worker identity, retry policy arithmetic, error rebuilding and settings."""

from __future__ import annotations

import random
import re

import pytest

from grctl.models.common import ErrorDetails
from grctl.models.directive import RetryPolicy
from grctl.worker.consumer import ack_wait_from_env
from grctl.worker.identity import name_hash, worker_id, worker_name
from grctl.worker.retry import backoff_delay_ms, is_retryable, max_attempts, rebuild_error, should_retry


class CustomError(Exception):
    pass


def test_worker_name_vector() -> None:
    assert name_hash(["order_wf", "payment_wf"]) == "e1ca5"
    assert worker_name(["payment_wf", "order_wf"]) == "w_e1ca5"  # order does not matter


def test_worker_id_format() -> None:
    wid = worker_id("w_e1ca5", hostname="host1")
    assert re.fullmatch(r"w_e1ca5\.[0-9a-f]{6}@host1", wid)  # <name>.<random>@<hostname>
    assert worker_id("w_e1ca5", hostname="my host", suffix="7f") == "w_e1ca5.7f@my-host"
    assert worker_id("w_e1ca5", hostname="h") != worker_id("w_e1ca5", hostname="h")


def test_backoff_delays() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert [backoff_delay_ms(policy, n) for n in (1, 2, 3, 4, 5, 10)] == [100, 200, 400, 800, 1600, 5000]
    flat = RetryPolicy(initial_delay_ms=1, backoff_multiplier=1.0)
    assert [backoff_delay_ms(flat, n) for n in (1, 2, 3)] == [1, 1, 1]
    capped = RetryPolicy(initial_delay_ms=300, backoff_multiplier=3.0, max_delay_ms=1000)
    assert [backoff_delay_ms(capped, n) for n in (1, 2, 3)] == [300, 900, 1000]
    jittered = RetryPolicy(initial_delay_ms=1000, jitter=0.5)
    delays = [backoff_delay_ms(jittered, 1, random.Random(seed)) for seed in range(50)]
    assert all(1000 <= d <= 1500 for d in delays) and len(set(delays)) > 1


def test_retry_filters() -> None:
    neither = RetryPolicy(max_attempts=3)
    allow = RetryPolicy(max_attempts=3, retryable_errors=["TimeoutError"])
    deny = RetryPolicy(max_attempts=3, non_retryable_errors=["ValueError"])
    both = RetryPolicy(max_attempts=3, retryable_errors=["ValueError", "KeyError"],
                       non_retryable_errors=["KeyError"])
    assert is_retryable(ValueError(), neither)
    assert is_retryable(TimeoutError(), allow) and not is_retryable(ValueError(), allow)
    assert not is_retryable(ValueError(), deny) and is_retryable(RuntimeError(), deny)
    assert is_retryable(ValueError(), both) and not is_retryable(KeyError(), both)
    assert not is_retryable(RuntimeError(), both)


def test_attempt_budget() -> None:
    assert max_attempts(None) == 1 and max_attempts(RetryPolicy()) == 1
    policy = RetryPolicy(max_attempts=3)
    assert should_retry(RuntimeError(), policy, 1) and should_retry(RuntimeError(), policy, 2)
    assert not should_retry(RuntimeError(), policy, 3)
    assert not should_retry(RuntimeError(), None, 1)


def test_rebuild_error() -> None:
    exc = rebuild_error(ErrorDetails(type="ValueError", message="original error",
                                     qualified_type="builtins.ValueError"))
    assert type(exc) is ValueError and str(exc) == "original error"
    custom = rebuild_error(ErrorDetails(type="CustomError", message="m",
                                        qualified_type=f"{__name__}.CustomError"))
    assert type(custom) is CustomError
    for qualified in ("", "no_such_module.Error", "builtins.len", "builtins"):
        fallback = rebuild_error(ErrorDetails(type="X", message="m", qualified_type=qualified))
        assert type(fallback) is RuntimeError and str(fallback) == "m"


def test_ack_wait_setting() -> None:
    assert ack_wait_from_env({}) == 5.0
    assert ack_wait_from_env({"ENGINE_NATS_WORKER_ACK_WAIT": "0.5"}) == 0.5
    with pytest.raises(ValueError):
        ack_wait_from_env({"ENGINE_NATS_WORKER_ACK_WAIT": "0"})
