"""Which failures are worth another try, the backoff they wait, and how a retrying loop logs them."""

from __future__ import annotations

import logging

import nats.errors
import pytest

from grctl.nats.retry import Backoff, is_transient, log_failure


def test_transport_trouble_is_transient_and_answers_are_not() -> None:
    assert is_transient(nats.errors.TimeoutError())
    assert is_transient(nats.errors.ConnectionClosedError())
    assert is_transient(ConnectionResetError())
    assert not is_transient(nats.errors.BadSubjectError())
    assert not is_transient(ValueError("bad data"))


def test_backoff_grows_to_its_cap() -> None:
    backoff = Backoff(initial=0.1, factor=2.0, cap=1.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_a_retrying_loop_logs_trouble_in_one_line_and_a_bug_with_its_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("grctl.test.retry")
    with caplog.at_level(logging.DEBUG, logger=log.name):
        log_failure(log, "reading", nats.errors.TimeoutError(), logging.DEBUG)
        try:
            raise KeyError("planner bug")
        except KeyError as exc:
            log_failure(log, "reading", exc, logging.DEBUG)
    trouble, bug = caplog.records
    assert trouble.levelno == logging.DEBUG and trouble.exc_info is None
    assert trouble.getMessage().startswith("reading failed: ")
    assert bug.levelno == logging.ERROR and bug.exc_info is not None and bug.exc_info[0] is KeyError
