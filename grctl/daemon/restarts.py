"""The supervisor's part that keeps children running: a worker process of the current generation, or
the embedded engine, that exits unexpectedly is started again with growing pauses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from grctl import settings
from grctl.daemon import metrics
from grctl.daemon.channel import Role
from grctl.daemon.events import ChildExited
from grctl.daemon.procs import ChildFailed, ChildProcess
from grctl.daemon.supervisor_state import SupervisorState

log = logging.getLogger("grctl.daemon")


class CrashRestarts(SupervisorState):
    def _install_engine(self, proc: ChildProcess) -> None:
        self.engine = proc

    def _watch_exit(self, proc: ChildProcess) -> None:
        async def wait() -> None:
            await proc.wait()
            self.queue.put_nowait(ChildExited(proc))

        self.spawn(wait())

    def _on_exit(self, proc: ChildProcess) -> None:
        if proc.stopping or self.stopping:
            return
        code = proc.proc.returncode if proc.proc else None
        if proc.role is Role.ENGINE:
            log.error("the embedded engine (pid %s) exited with code %s", proc.pid, code)
            self.spawn(self._revive(proc, lambda: ChildProcess(Role.ENGINE, proc.cfg), self._install_engine))
            return
        gen = next((g for g in self.generations if proc in g.processes), None)
        if gen is None or gen is not self.current or gen.stopping:
            return
        log.error("%s exited unexpectedly with code %s", proc.label, code)

        def replace(new: ChildProcess) -> None:
            gen.processes[proc.index] = new

        self.spawn(
            self._revive(proc, lambda: ChildProcess(Role.WORKER, gen.cfg, gen.number, proc.index), replace)
        )

    async def _revive(
        self, dead: ChildProcess, make: Callable[[], ChildProcess], install: Callable[[ChildProcess], None]
    ) -> None:
        """Restart a crashed child with growing pauses (0.5s, 1s, 2s ... 30s), never in a tight loop."""
        stable = dead.ready_at is not None and time.monotonic() - dead.ready_at > settings.STABLE_AFTER
        failures = 1 if stable else dead.failures + 1
        while not self.stopping:
            delay = settings.RESTART_BACKOFF.delay(failures)
            log.info("restarting %s in %gs", dead.label, delay)
            await asyncio.sleep(delay)
            if self.stopping or (
                dead.role is Role.WORKER and self.current is not None
                and dead.generation != self.current.number
            ):
                return
            new = make()
            new.failures = failures
            metrics.CHILD_RESTARTS.labels(dead.role).inc()
            install(new)
            try:
                await new.start()
                await new.wait_ready(new.cfg.worker.ready_timeout)
            except (ChildFailed, OSError) as failure:
                log.error("%s did not start: %s", new.label, self._located(failure))
                await new.stop(1.0)
                failures += 1
                continue
            log.info("%s replaced the crashed process", new.label)
            self._watch_exit(new)
            return
