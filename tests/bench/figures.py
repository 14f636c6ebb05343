"""The arithmetic every benchmark prints with: percentiles and a process's CPU time; and the problems a
benchmark met (failed, lost or wrong runs, start errors), which make it exit non-zero so that its smoke
run in the test suite fails on them."""

from __future__ import annotations

import psutil

_problems: list[str] = []


def problem(what: str) -> None:
    """Record (and print) something that went wrong: the benchmark's exit status becomes 1."""
    _problems.append(what)
    print(f"PROBLEM: {what}", flush=True)


def exit_status() -> int:
    return 1 if _problems else 0


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile of ``values`` (nearest rank); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def cpu_seconds(proc: psutil.Process) -> float:
    """User plus system CPU time spent so far by ``proc``."""
    t = proc.cpu_times()
    return t.user + t.system
