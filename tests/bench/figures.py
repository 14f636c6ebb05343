"""The arithmetic every benchmark prints with: percentiles and a process's CPU time; and the problems a
benchmark met (failed, lost or wrong runs, start errors), which make it exit non-zero so that its smoke
run in the test suite fails on them."""

from __future__ import annotations

import statistics
import time

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


class RssSampler:
    """Each process's resident memory over time (MiB), sampled by ``sample()``; the slope (MiB per minute,
    least squares) shows a leak that the last value alone would hide."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = dict(procs)
        self.started = time.monotonic()
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in procs}

    def track(self, name: str, proc: psutil.Process) -> None:
        self.procs[name] = proc
        self.samples.setdefault(name, [])

    def sample(self) -> None:
        at = time.monotonic() - self.started
        for name, proc in self.procs.items():
            try:
                # an exited process not yet reaped (a grctld child whose parent was killed waits for
                # init) shows 0 bytes: its series ends, as a killed process's does
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                self.samples[name].append((at, proc.memory_info().rss / 2**20))
            except psutil.Error:  # gone (killed): its series simply ends
                pass

    def slope(self, name: str) -> float:
        points = self.samples[name]
        if len(points) < 3:
            return float("nan")
        xs, ys = [t / 60 for t, _ in points], [m for _, m in points]
        return statistics.linear_regression(xs, ys).slope

    def lines(self) -> list[str]:
        out = []
        for name, points in self.samples.items():
            if points:
                peak = max(m for _, m in points)
                out.append(f"rss {name:14s} first {points[0][1]:6.0f} MiB  last {points[-1][1]:6.0f} MiB  "
                           f"max {peak:6.0f} MiB  slope {self.slope(name):+7.2f} MiB/min  "
                           f"({len(points)} samples)")
        return out
