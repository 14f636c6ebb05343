"""The supervisor: owns the configuration, the watch, the signals, systemd notification and the child
processes (embedded nats-server, embedded engine, worker generations).

One loop takes events from a queue (signals, file changes, child exits); signal handlers only enqueue.
A reload starts generation N+1 and waits until it is ready before generation N drains, so there is no
moment without a consuming worker (unlike a stop-then-start restart). Noticing changes
(``daemon/changes.py``) and restarting crashed children (``daemon/restarts.py``) are parts of their own
over the shared state (``daemon/supervisor_state.py``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from grctl import settings
from grctl.daemon import metrics
from grctl.daemon.changes import ChangeWatch
from grctl.daemon.channel import ReadyInfo, Role
from grctl.daemon.config import Overrides, load_config
from grctl.daemon.endpoints import DaemonOps, not_ready
from grctl.daemon.errors import ConfigError
from grctl.daemon.events import (
    ChildExited,
    ConfigTouched,
    Event,
    SignalReceived,
    SourcesTouched,
    Stopped,
)
from grctl.daemon.logs import configure_logging
from grctl.daemon.model import DaemonConfig
from grctl.daemon.notify import Notifier
from grctl.daemon.procs import ChildFailed, ChildProcess, Generation, stop_budget
from grctl.daemon.restarts import CrashRestarts
from grctl.daemon.schedule_declare import ScheduleDeclarer
from grctl.daemon.services import EmbeddedNatsServer, keep_services
from grctl.daemon.strand import StrandingRefused, check_before_dropping
from grctl.daemon.watch import Watcher, digest
from grctl.lifecycle import cancel, on_signals

log = logging.getLogger("grctl.daemon")

EXIT_FORCED = 130


class StartupError(Exception):
    pass


class Supervisor(ChangeWatch, CrashRestarts):
    def __init__(self, cfg: DaemonConfig, config_path: str, overrides: Overrides | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.overrides = overrides or Overrides()
        self.notifier = Notifier()
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.current: Generation | None = None
        self.serving: list[str] = []  # the workflow types the current generation serves
        self.generations: set[Generation] = set()
        self.counter = 0
        self.nats: EmbeddedNatsServer | None = None
        self.engine: ChildProcess | None = None
        self.bringup: asyncio.Task[bool] | None = None
        self.reload_again = False
        self.stopping = False
        self.digest = digest(config_path)
        self.sources: dict[str, str | None] = {}  # content of changed workflow sources, by path
        self.watcher: Watcher | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.ops = DaemonOps(cfg.http.listen)
        self.schedules = ScheduleDeclarer()

    # -- the loop ------------------------------------------------------------------------------------

    async def run(self) -> int:
        with on_signals(lambda signum: self.queue.put_nowait(SignalReceived(signum)),
                        signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            return await self._run()

    async def _run(self) -> int:
        if self.notifier.watchdog_interval:
            self.spawn(self._watchdog(self.notifier.watchdog_interval))
        self.notifier.status("starting")
        try:
            try:
                await self._start_services()
            except StartupError as exc:
                log.error("%s", exc)
                self.notifier.stopping(f"failed: {exc}")
                await self._shutdown()
                return 1
            self.bringup = self.spawn(self._bring_up(self.cfg, initial=True))
            self.spawn(self._poll(settings.CONFIG_POLL_INTERVAL))
            return await self._loop()
        finally:
            for task in list(self.tasks):
                task.cancel()
            self.notifier.close()

    async def _loop(self) -> int:
        while True:
            match await self.queue.get():
                case SignalReceived(signum):
                    done = self._on_signal(signum)
                    if done is not None:
                        return done
                case ConfigTouched(by):
                    self._on_config_event(by)
                case SourcesTouched(paths):
                    self._on_sources_event(paths)
                case ChildExited(proc):
                    self._on_exit(proc)
                case Stopped(code):
                    return code

    def _on_signal(self, signum: int) -> int | None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            self._request_reload("SIGHUP")
        elif not self.stopping:
            log.info(
                "%s: stopping gracefully (up to %gs; a second SIGINT stops at once)",
                name,
                self.cfg.shutdown_timeout,
            )
            self.stopping = True
            self.spawn(self._stop_then_report())
        elif signum == signal.SIGINT:
            log.warning("second SIGINT: stopping at once")
            self._kill_all()
            return EXIT_FORCED
        else:
            log.info("%s: already stopping", name)
        return None

    async def _stop_then_report(self, code: int = 0) -> None:
        await self._shutdown()
        self.queue.put_nowait(Stopped(code))

    # -- reload --------------------------------------------------------------------------------------

    def _request_reload(self, reason: str) -> None:
        if self.stopping:
            return
        if self.bringup is not None and not self.bringup.done():
            log.info("reload requested (%s) while one is in progress: it will follow", reason)
            self.reload_again = True
            return
        self.bringup = self.spawn(self._reload(reason))

    async def _reload(self, reason: str) -> bool:
        old = self.current
        keeps = f"generation {old.number} keeps running" if old else "no generation is running"
        log.info("reloading: %s", reason)
        self.notifier.reloading(f"reloading: {reason}")
        self.digest = digest(self.config_path)
        try:
            try:
                new = load_config(self.config_path, overrides=self.overrides)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("%s", problem)
                metrics.RELOADS.labels("refused").inc()
                log.error("configuration not reloaded: %s", keeps)
                self.notifier.ready(f"reload failed: {exc.first}; {keeps}")
                return False
            new = keep_services(self.cfg, new)
            configure_logging(new.logging, new.secrets(), role="supervisor")
            applied = await self._bring_up(new, initial=False)
            metrics.RELOADS.labels("applied" if applied else "failed").inc()
            if applied:
                metrics.CONFIG_LOADED.set_to_current_time()
            return applied
        finally:
            if self.reload_again and not self.stopping:
                self.reload_again = False
                asyncio.get_running_loop().call_soon(
                    self._request_reload, "a change made during the last reload"
                )

    async def _bring_up(self, cfg: DaemonConfig, initial: bool) -> bool:
        """Start a generation and wait until it is ready; then the previous one drains.
        At startup, failures are retried with backoff; on reload, the running generation is kept."""
        if not cfg.workflows:
            if not initial and self.current is not None:
                try:  # no new worker asks the engine here: dropping every type is checked all the same
                    await check_before_dropping(cfg.nats.connect_options(), self.serving,
                                                cfg.reload.allow_missing_handlers)
                except StrandingRefused as refused:
                    log.error("%s", refused)
                    keeps = f"generation {self.current.number} keeps running"
                    self.notifier.ready(f"reload failed: {refused}; {keeps}")
                    return False
            self._no_workers(cfg)
            return True
        failures = 0
        while True:
            self.counter += 1
            gen = Generation(self.counter, cfg, None if initial or self.current is None else self.serving)
            self.generations.add(gen)
            log.info("starting generation %d: %d worker process(es)", gen.number, len(gen.processes))
            try:
                await gen.start()
                infos = await gen.wait_ready()
            except (ChildFailed, OSError) as failure:
                exc = self._located(failure)
                log.error("generation %d did not start: %s", gen.number, exc)
                await self._retire(gen)
                if not initial:
                    keeps = (
                        f"generation {self.current.number} keeps running" if self.current else "nothing runs"
                    )
                    self.notifier.ready(f"reload failed: {exc}; {keeps}")
                    return False
                if isinstance(exc, ChildFailed) and exc.fatal:  # the code does not import: no retry
                    log.error("cannot start: %s", exc)
                    self.stopping = True
                    self.spawn(self._stop_then_report(1))
                    return False
                failures += 1
                delay = settings.RESTART_BACKOFF.delay(failures)
                self.notifier.status(f"generation {gen.number} did not start: {exc}; retrying in {delay:g}s")
                log.info("retrying in %gs", delay)
                await asyncio.sleep(delay)
                continue
            except asyncio.CancelledError:
                await self._retire(gen)
                raise
            self._promote(gen, infos)
            return True

    def _promote(self, gen: Generation, infos: list[ReadyInfo]) -> None:
        old, self.current, self.cfg = self.current, gen, gen.cfg
        self.schedules.declare(gen.cfg)
        metrics.GENERATIONS_STARTED.inc()
        metrics.GENERATION.set(gen.number)
        for proc in gen.processes:
            self._watch_exit(proc)
        types = sorted({t for info in infos for t in info.workflows})
        self.serving = types
        imported: dict[str, str | None] = {f: d for info in infos for f, d in info.files.items()}
        self.sources = dict(imported)  # what this generation runs: later edits are changes
        self._restart_watcher(gen.cfg, sorted(imported))
        status = (
            f"generation {gen.number} ready: {len(gen.processes)} worker process(es), pids "
            f"{', '.join(map(str, gen.pids))}; workflows: {', '.join(types)}"
        )
        log.info("%s", status)
        self.notifier.ready(status)
        if old is not None:
            log.info("draining generation %d (up to %gs)", old.number, old.cfg.shutdown_timeout)
            self.spawn(self._drain(old))

    def _no_workers(self, cfg: DaemonConfig) -> None:
        """An engine-only node: no generation runs (a previous one, if a reload removed the workflows,
        drains)."""
        old, self.current, self.cfg = self.current, None, cfg
        self.schedules.declare(cfg)
        self.sources = {}
        self._restart_watcher(cfg, [])
        status = "ready: engine only (no workflows to run)"
        log.info("%s", status)
        self.notifier.ready(status)
        if old is not None:
            log.info("draining generation %d (up to %gs)", old.number, old.cfg.shutdown_timeout)
            self.spawn(self._drain(old))

    async def _drain(self, gen: Generation) -> None:
        await self._retire(gen)
        log.info("generation %d drained and stopped", gen.number)

    async def _retire(self, gen: Generation) -> None:
        try:
            await gen.stop()
        finally:
            self.generations.discard(gen)


    # -- services, watch, stop -----------------------------------------------------------------------

    async def _start_services(self) -> None:
        try:
            await self.ops.start(lambda: not_ready(self.stopping, self.current, self.engine))
        except (OSError, ValueError) as exc:
            raise StartupError(f"cannot listen on http.listen {self.cfg.http.listen}: {exc}") from exc
        if self.cfg.nats.embedded is not None:
            self.nats = EmbeddedNatsServer(self.cfg.nats.embedded)
            try:
                await asyncio.to_thread(self.nats.start)
            except (OSError, RuntimeError, TimeoutError) as exc:
                raise StartupError(f"the embedded nats-server did not start: {exc}") from exc
        if self.cfg.engine.embedded:
            self.engine = ChildProcess(Role.ENGINE, self.cfg)
            await self.engine.start()
            try:
                await self.engine.wait_ready(self.cfg.worker.ready_timeout)
            except ChildFailed as exc:
                raise StartupError(f"the embedded engine did not start: {exc}") from exc
            self._watch_exit(self.engine)

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _shutdown(self) -> None:
        self.stopping = True
        self.notifier.stopping("stopping", extend=stop_budget(self.cfg.shutdown_timeout))
        if self.watcher is not None:
            await self.watcher.stop()
        if self.bringup is not None and not self.bringup.done():
            await cancel(self.bringup, again_after=None)  # its clean-up retires a generation
        await asyncio.gather(*(self._retire(g) for g in list(self.generations)), return_exceptions=True)
        await self.schedules.close()
        if self.engine is not None:
            await self.engine.stop(self.cfg.shutdown_timeout)
        if self.nats is not None:
            await asyncio.to_thread(self.nats.stop)
        await self.ops.stop()
        log.info("stopped")

    def _kill_all(self) -> None:
        for gen in list(self.generations):
            gen.kill()
        if self.engine is not None:
            self.engine.kill()
        if self.nats is not None:
            self.nats.kill()
        self.ops.close()
