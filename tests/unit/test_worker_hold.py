"""Holding a task the worker's code cannot run: the delay grows to a cap (no hot loop), and a run's
hold is logged once per process however often its task comes back (no log flood)."""

from __future__ import annotations

import logging

import pytest

from grctl.models.common import RunInfo, StuckReason, utcnow
from grctl.models.directive import Directive, DirectiveKind, Step
from grctl.settings import HOLD_BACKOFF as HOLD_DELAY
from grctl.worker.hold import HeldRuns, Mismatch, hold_delay


def task(run_id: str) -> Directive:
    return Directive(id=f"D-{run_id}", timestamp=utcnow(), kind=DirectiveKind.step,
                     run_info=RunInfo(id=run_id, wf_id=f"W-{run_id}", wf_type="T"),
                     msg=Step(step_name="ship"))


def test_the_hold_delay_grows_to_its_cap() -> None:
    low = HOLD_DELAY.initial * (1 - HOLD_DELAY.jitter)
    high = HOLD_DELAY.initial * (1 + HOLD_DELAY.jitter)
    assert low <= hold_delay(1) <= high
    assert 4 * low <= hold_delay(3) <= 4 * high
    assert all(hold_delay(n) <= HOLD_DELAY.cap * (1 + HOLD_DELAY.jitter) for n in range(1, 200))
    assert hold_delay(200) >= HOLD_DELAY.cap * (1 - HOLD_DELAY.jitter)


def test_a_run_is_logged_once_per_mismatch(caplog: pytest.LogCaptureFixture) -> None:
    held = HeldRuns(capacity=2)
    missing = Mismatch(StuckReason.missing_handler, "ship", "no handler named 'ship'")
    with caplog.at_level(logging.INFO, logger="grctl.worker"):
        for _ in range(5):
            held.log(task("R1"), missing, 1.0)
        held.log(task("R1"), Mismatch(StuckReason.unbound_parameters, "ship", "KeyError"), 1.0)
        held.log(task("R2"), missing, 1.0)
        held.log(task("R3"), missing, 1.0)  # beyond the capacity: R1 is forgotten first
        held.log(task("R1"), missing, 1.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split()[1] for w in warnings] == ["W-R1/R1", "W-R1/R1", "W-R2/R2", "W-R3/R3", "W-R1/R1"]
    assert "is held, not failed: no handler named 'ship'" in warnings[0]
