"""The arithmetic every benchmark prints with: percentiles and a process's CPU time."""

from __future__ import annotations

import psutil


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
