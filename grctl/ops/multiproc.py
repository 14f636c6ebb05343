"""One metrics directory for all of grctld's worker processes, read by the supervisor at scrape time.

A worker process counts into memory-mapped files of its own in the directory (``prometheus_client``'s
multiprocess mode, switched on by ``PROMETHEUS_MULTIPROC_DIR`` in its environment before it imports
the library); the supervisor adds up every file when ``/metrics`` is asked, so the answer does not
depend on which child is asked, and counters keep the counts of workers that have exited (a restarted
or drained worker's steps still count). The directory lives as long as grctld: counters only restart
when grctld does. Gauges of exited processes are dropped (``mark_process_dead``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("grctl.ops")

ENV = "PROMETHEUS_MULTIPROC_DIR"

_active: MetricsDirectory | None = None


class _Forward(Collector):
    """Collects another registry (the supervisor's own, in-memory metrics) into this one."""

    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self._registries = list(registries)

    def collect(self) -> Iterator[Metric]:
        for registry in self._registries:
            yield from registry.collect()


class MetricsDirectory:
    """The directory, created empty; ``close()`` removes it."""

    def __init__(self, parent: str | None = None) -> None:
        parent = parent or os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or None
        self.path = tempfile.mkdtemp(prefix="grctld-metrics-", dir=parent)

    def activate(self) -> None:
        """Children started from now on count into this directory."""
        global _active
        _active = self

    def registry(self, *own: CollectorRegistry) -> CollectorRegistry:
        """What ``/metrics`` shows: every worker process's files, plus the registries in ``own``."""
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=self.path)
        if own:
            registry.register(_Forward(own))
        return registry

    def close(self) -> None:
        global _active
        if _active is self:
            _active = None
        shutil.rmtree(self.path, ignore_errors=True)


def child_environment(env: dict[str, str], counts: bool) -> dict[str, str]:
    """``env`` for a child: counting into the active directory when ``counts`` (a worker), never into
    one inherited from whoever started grctld."""
    env.pop(ENV, None)
    env.pop("prometheus_multiproc_dir", None)
    if counts and _active is not None:
        env[ENV] = _active.path
    return env


def process_exited(pid: int | None) -> None:
    """Forget the live gauges (steps in flight...) of a child that has exited."""
    if _active is not None and pid:
        with contextlib.suppress(OSError):
            mark_process_dead(pid, _active.path)


def counting_here() -> bool:
    """Was this process started to count into a grctld metrics directory?"""
    return bool(os.environ.get(ENV))
