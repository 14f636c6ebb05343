"""The engine: owns the ``grctl_state`` stream and runs the directive, timer and background-task
consumers, the group committer, the sweep and the API (``grctl.engine.program`` runs it as a program)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from datetime import datetime, timedelta

from grctl import settings
from grctl.engine.api_server import ApiServer
from grctl.engine.bgtasks import BackgroundTasks
from grctl.engine.committer import GroupCommitter
from grctl.engine.manager import DirectiveManager
from grctl.engine.migrate import ensure_latest_pointers
from grctl.engine.persistence import Persistence
from grctl.engine.placement import keep_consumers_with_stream_leader
from grctl.engine.registry import Registry
from grctl.engine.runindex import RunIndex
from grctl.engine.schedule_api import ScheduleApi
from grctl.engine.schedules import Scheduler
from grctl.engine.snapshot import (
    DEFAULT_RECOVERY_GRACE,
    DEFAULT_RETENTION,
    DEFAULT_STEP_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    PlanConfig,
)
from grctl.engine.sweep import Sweeper
from grctl.engine.timers import TimerHandler
from grctl.lifecycle import Lifecycle, cancel
from grctl.models.common import utcnow
from grctl.nats.connection import Connection
from grctl.nats.direct import forget_stream_layout
from grctl.nats.jetstream import ensure_stream
from grctl.nats.pull import PullLoop
from grctl.nats.retry import log_failure, retrying
from grctl.nats.stream_settings import StreamSettings

log = logging.getLogger(__name__)

STARTUP = (settings.ENGINE_STARTUP_BUDGET, settings.ENGINE_STARTUP_BACKOFF)  # retrying()'s budget, schedule


def sender_id(connection: Connection) -> str:
    """``s:{hostname}:{port}``, the port being the one of the NATS server we are connected to."""
    url = connection.nc.connected_url
    port = url.port if url is not None and url.port else 4222
    return f"s:{socket.gethostname()}:{port}"


class Engine:
    """The orchestration server on an open connection (which the caller keeps owning).

    ``await start()`` returns once every consumer is fetching and the API is subscribed; ``await stop()``
    stops intake, lets in-flight work finish (within ``timeout``) and unsubscribes. Both are idempotent.
    ``retention`` None keeps finished runs for ever.
    """

    def __init__(self, connection: Connection, *, step_timeout: timedelta = DEFAULT_STEP_TIMEOUT,
                 wait_timeout: timedelta = DEFAULT_WAIT_TIMEOUT, memory: bool = False,
                 group_commit: bool = True, worker_cmd_timeout: float = settings.WORKER_CMD_TIMEOUT,
                 retention: timedelta | None = DEFAULT_RETENTION,
                 recovery_grace: timedelta = DEFAULT_RECOVERY_GRACE,
                 sweep_interval: float = settings.SWEEP_INTERVAL,
                 stream: StreamSettings | None = None) -> None:
        if step_timeout <= timedelta(0) or wait_timeout <= timedelta(0):
            raise ValueError("step_timeout and wait_timeout must be positive")
        if retention is not None and retention <= timedelta(0):
            raise ValueError("retention must be positive (or None to keep finished runs for ever)")
        self.connection = connection
        self.config = PlanConfig(step_timeout=step_timeout, wait_timeout=wait_timeout,
                                 recovery_grace=recovery_grace, retention=retention)
        self._memory = memory
        self._stream = stream or StreamSettings()
        self._started_at: datetime = utcnow()
        nc, js = connection.nc, connection.js
        self.committer = GroupCommitter(connection, enabled=group_commit)
        self.manager = DirectiveManager(nc, js, Persistence(nc, self.committer), self.config,
                                        watched_since=self.watched_since)
        self.timers = TimerHandler(nc, js)
        self.bg_tasks = BackgroundTasks(nc, js, sender_id(connection), worker_cmd_timeout)
        self.sweeper = Sweeper(nc, js, sweep_interval)
        self.runs = RunIndex(nc, js, retention)
        self.api = ApiServer(nc, self.committer, Registry(nc, self.committer),
                             int(step_timeout.total_seconds() * 1000), runs=self.runs)
        self.scheduler = Scheduler(nc, js, self.api)
        self.schedules = ScheduleApi(self.api, self.scheduler)
        self._consumers: list[PullLoop] = [self.manager.consumer, self.timers.consumer,
                                           self.bg_tasks.consumer, self.scheduler.consumer]
        self._loops: list[asyncio.Task[None]] = []
        self._housekeeping: list[asyncio.Task[None]] = []  # the sweep and the consumer placement
        self.state = Lifecycle.NEW

    @property
    def running(self) -> bool:
        return self.state is Lifecycle.RUNNING

    @property
    def not_running_reason(self) -> str | None:
        return None if self.running else f"engine {self.state}"

    def watched_since(self) -> datetime:
        """Since when this engine has been consuming without a break (its start, its last reconnection
        to NATS, or the last time the stream refused a write for lack of storage: a step could not
        report its result then)."""
        full = self.committer.storage.last_refused
        return max(self._started_at, self.connection.up_since, full or self._started_at)

    async def start(self) -> None:
        if self.state is not Lifecycle.NEW:
            return
        self.state = Lifecycle.STARTING
        # A cluster electing leaders (a stream just made or grown, a node just lost) does not answer
        # JetStream requests for a moment: the engine waits for it instead of failing to start.
        await retrying(self._prepare_stream, *STARTUP, "preparing the stream", warn=True)
        await retrying(self.runs.start, *STARTUP, "loading the run index", warn=True)
        self._started_at = utcnow()
        self.committer.start()
        for consumer in self._consumers:
            await retrying(consumer.bind, *STARTUP, f"binding consumer {consumer.name}", warn=True)
            self._loops.append(consumer.start())
        self._housekeeping = [
            asyncio.create_task(self.sweeper.run(), name="grctl-sweep"),
            asyncio.create_task(keep_consumers_with_stream_leader(self.connection.nc, self.connection.js),
                                name="grctl-placement"),
            asyncio.create_task(self._reconcile_schedules(), name="grctl-schedules"),
        ]
        await self.api.start()  # last: requests are only taken once directives are consumed
        self.state = Lifecycle.RUNNING
        retention = self.config.retention or "for ever"
        log.info("engine running (step timeout %s, wait timeout %s, finished runs kept %s)",
                 self.config.step_timeout, self.config.wait_timeout, retention)

    async def _reconcile_schedules(self) -> None:
        """Once, in the background: the schedules' states against the declarations, missing ticks
        re-armed (a failure is retried; it never stops the engine)."""
        for attempt in itertools.count(1):
            try:
                await self.schedules.reconcile_all()
                return
            except Exception as exc:
                log_failure(log, "reconciling the schedules", exc)
            await asyncio.sleep(settings.ENGINE_STARTUP_BACKOFF.delay(attempt))

    async def _prepare_stream(self) -> None:
        await ensure_stream(self.connection.js, memory=self._memory, settings=self._stream)
        forget_stream_layout(self.connection.nc)  # its replicas may have just changed
        await ensure_latest_pointers(self.connection.nc)

    async def stop(self, timeout: float = settings.ENGINE_STOP_TIMEOUT) -> None:
        if self.state in (Lifecycle.STOPPING, Lifecycle.STOPPED):
            return
        if self.state is Lifecycle.NEW:
            self.state = Lifecycle.STOPPED
            return
        self.state = Lifecycle.STOPPING
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.api.stop(timeout=max(0.1, timeout / 3))
        for task in self._housekeeping:
            await cancel(task)
        # A fetch in progress may still hand out messages: end the loops first, then wait for handlers.
        for consumer in self._consumers:
            await consumer.stop()
        for consumer in self._consumers:
            if not await consumer.wait_idle(max(0.1, deadline - loop.time())):
                log.warning("%s: handlers still running at shutdown; cancelling them", consumer.name)
                await consumer.cancel_running()
        await self.committer.close(timeout=max(0.1, deadline - loop.time()))
        await self.runs.stop()
        for consumer in self._consumers:
            await consumer.close()
        self._loops.clear()
        self.state = Lifecycle.STOPPED
        log.info("engine stopped (%d transitions committed in %d batches)", self.committer.transitions,
                 self.committer.batches)
