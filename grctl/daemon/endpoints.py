"""grctld's HTTP listener (``http.listen``): ``/metrics`` adds up every worker process (through the
multiprocess directory) and the supervisor's own metrics; ``/readyz`` is 200 while the current
generation is ready and connected to NATS (and the embedded engine too, when there is one)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from grctl.daemon import metrics
from grctl.daemon.channel import Role
from grctl.daemon.procs import ChildProcess, Generation
from grctl.ops.http import OpsServer, Readiness
from grctl.ops.listen import parse_listen
from grctl.ops.multiproc import MetricsDirectory

log = logging.getLogger("grctl.daemon")


def not_ready(stopping: bool, gen: Generation | None, engine: ChildProcess | None) -> str | None:
    """Why grctld does not consume now, or None when it does: the current generation ``gen`` and the
    embedded ``engine`` must be ready and connected."""
    if stopping:
        return "grctld is stopping"
    if gen is None:
        return "no worker generation is ready yet"
    children: Sequence[ChildProcess] = [*gen.processes, *([engine] if engine is not None else [])]
    for child in children:
        reason = child.not_ready()
        if reason is not None:
            return f"generation {gen.number}: {reason}" if child.role is Role.WORKER else reason
    return None


class DaemonOps:
    """The listener and the metrics directory, both only when ``listen`` is set."""

    def __init__(self, listen: str | None) -> None:
        self.listen = listen
        self.directory: MetricsDirectory | None = None
        self.server: OpsServer | None = None

    async def start(self, ready: Readiness) -> None:
        metrics.CONFIG_LOADED.set_to_current_time()
        metrics.READY.set_function(lambda: 1.0 if ready() is None else 0.0)
        if not self.listen:
            return
        self.directory = MetricsDirectory()
        self.directory.activate()
        self.server = OpsServer(parse_listen(self.listen), self.directory.registry(metrics.REGISTRY), ready,
                                collect_in_thread=True)
        try:
            await self.server.start()
        except OSError:
            self.close()
            raise
        log.info("worker metrics are collected in %s", self.directory.path)

    def close(self) -> None:
        if self.directory is not None:
            self.directory.close()
            self.directory = None

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        self.close()
