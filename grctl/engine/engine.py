"""The engine: owns the ``grctl_state`` stream and runs the directive, timer and background-task
consumers, the group committer and the API. ``run_engine`` is the ``grctl engine`` program."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from datetime import timedelta
from typing import Any

from grctl.engine.api import ApiServer
from grctl.engine.bgtasks import BackgroundTasks
from grctl.engine.committer import GroupCommitter
from grctl.engine.manager import DirectiveManager
from grctl.engine.registry import Registry
from grctl.engine.snapshot import PlanConfig
from grctl.engine.store import Store
from grctl.engine.timers import TimerHandler
from grctl.nats.connection import Connection
from grctl.nats.jetstream import ensure_stream
from grctl.nats.pull import PullConsumer
from grctl.nats.stream_settings import StreamSettings

log = logging.getLogger(__name__)


def sender_id(connection: Connection) -> str:
    """``s:{hostname}:{port}``, the port being the one of the NATS server we are connected to."""
    url = connection.nc.connected_url
    port = url.port if url is not None and url.port else 4222
    return f"s:{socket.gethostname()}:{port}"


class Engine:
    """The orchestration server on an open connection (which the caller keeps owning).

    ``await start()`` returns once every consumer is fetching and the API is subscribed; ``await stop()``
    stops intake, lets in-flight work finish (within ``timeout``) and unsubscribes. Both are idempotent.
    """

    def __init__(self, connection: Connection, *, step_timeout: timedelta = timedelta(minutes=5),
                 wait_timeout: timedelta = timedelta(hours=1), memory: bool = False,
                 group_commit: bool = True, worker_cmd_timeout: float = 5.0,
                 stream: StreamSettings | None = None) -> None:
        if step_timeout <= timedelta(0) or wait_timeout <= timedelta(0):
            raise ValueError("step_timeout and wait_timeout must be positive")
        self.connection = connection
        self.config = PlanConfig(step_timeout=step_timeout, wait_timeout=wait_timeout)
        self._memory = memory
        self._stream = stream or StreamSettings()
        nc, js = connection.nc, connection.js
        self.committer = GroupCommitter(nc, enabled=group_commit)
        self.manager = DirectiveManager(js, Store(nc, self.committer), self.config)
        self.timers = TimerHandler(nc, js)
        self.bg_tasks = BackgroundTasks(nc, js, sender_id(connection), worker_cmd_timeout)
        self.api = ApiServer(nc, self.committer, Registry(nc, self.committer),
                             int(step_timeout.total_seconds() * 1000))
        self._consumers: list[PullConsumer] = [self.manager.consumer, self.timers.consumer,
                                               self.bg_tasks.consumer]
        self._loops: list[asyncio.Task[None]] = []
        self._state = "new"

    @property
    def running(self) -> bool:
        return self._state == "running"

    async def start(self) -> None:
        if self._state != "new":
            return
        self._state = "starting"
        await ensure_stream(self.connection.js, memory=self._memory, settings=self._stream)
        self.committer.start()
        for consumer in self._consumers:
            await consumer.ensure_consumer()
            self._loops.append(asyncio.create_task(consumer.run(), name=f"grctl-{consumer.durable}"))
        await self.api.start()  # last: requests are only taken once directives are consumed
        self._state = "running"
        log.info("engine running (step timeout %s, wait timeout %s)", self.config.step_timeout,
                 self.config.wait_timeout)

    async def stop(self, timeout: float = 30.0) -> None:
        if self._state in ("stopping", "stopped"):
            return
        if self._state == "new":
            self._state = "stopped"
            return
        self._state = "stopping"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.api.stop(timeout=max(0.1, timeout / 3))
        for consumer in self._consumers:
            consumer.stop_fetching()
        # A fetch in progress may still hand out messages: wait for the loops to end, then for handlers.
        if self._loops:
            await asyncio.wait(self._loops, timeout=max(0.1, deadline - loop.time()))
        for consumer in self._consumers:
            if not await consumer.wait_idle(max(0.1, deadline - loop.time())):
                log.warning("%s: handlers still running at shutdown; cancelling them", consumer.durable)
                await consumer.cancel_running()
        await self.committer.close(timeout=max(0.1, deadline - loop.time()))
        for consumer in self._consumers:
            await consumer.close()
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()
        self._state = "stopped"
        log.info("engine stopped (%d transitions committed in %d batches)", self.committer.transitions,
                 self.committer.batches)


async def run_engine(servers: list[str] | None = None, *, memory: bool = False,
                     step_timeout: timedelta = timedelta(minutes=5),
                     wait_timeout: timedelta = timedelta(hours=1),
                     stop_event: asyncio.Event | None = None,
                     stream: StreamSettings | None = None,
                     connect_options: dict[str, Any] | None = None) -> None:
    """Connect, start an engine, serve until SIGINT/SIGTERM (or ``stop_event``), then stop and close.

    ``connect_options`` go to ``Connection.connect`` (credentials, TLS, reconnection: see
    ``NatsConfig.connect_options``); ``servers``, when given, replace the servers they name."""
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    options: dict[str, Any] = {"name": "grctl-engine", **(connect_options or {})}
    if servers is not None:
        options["servers"] = servers
    connection = await Connection.connect(**options)
    engine = Engine(connection, step_timeout=step_timeout, wait_timeout=wait_timeout, memory=memory,
                    stream=stream)
    try:
        await engine.start()
        await stop.wait()
        log.info("stopping")
    finally:
        await engine.stop()
        await connection.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
