"""Under CI=true (.ci/run) a skip is a failure: CI installs every tool the tests use, so a skip there
means coverage lost without a word. Loaded by tests/conftest.py (or ``-p support.ci_skips``)."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

# Tests allowed to skip in CI, by node id, each with the reason (none now).
CI_SKIP_ALLOWED: dict[str, str] = {}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _fail_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and report.nodeid not in CI_SKIP_ALLOWED:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must skip nothing: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if _in_ci():
        _fail_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if _in_ci():
        _fail_skip(report)
    return report
