"""The Worker: registers its workflow types, pulls step assignments and runs them in-process.

    worker = Worker(workflows=[order_wf], connection=await Connection.connect())
    await worker.start()            # blocks until stop() has finished

Lifecycle: ``start()`` registers the catalog with the engine (no consuming if that fails), creates or
binds the pull consumer of each type, starts the fetch loops (one per type, sharing the process's step
slots) and the command subscription, then sets ``ready``. ``stop(shutdown_timeout)`` closes the intake
(no new steps), keeps in-flight steps alive with in-progress acks until they finish or the timeout
passes, cancels what is left (their tasks are NAKed for another worker), and closes the connection it
was given. ``stop()`` is idempotent and safe before ``start()``. If the connection is closed for good
under it, ``start()`` raises ``ConnectionLostError`` (a supervisor then starts the process again).
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext

from grctl import settings
from grctl.codec import CodecRegistry, default_codec
from grctl.lifecycle import Lifecycle
from grctl.nats import registering, subjects
from grctl.nats.connection import Connection, ConnectionLostError
from grctl.nats.pull import Capacity, PullLoop
from grctl.worker.commands import CommandServer
from grctl.worker.consumer import ack_wait_from_env, ensure_task_consumer
from grctl.worker.dispatcher import Dispatcher
from grctl.worker.identity import worker_id as make_worker_id
from grctl.worker.identity import worker_name as make_worker_name
from grctl.worker.publisher import Publisher
from grctl.worker.registration import register
from grctl.workflow import Workflow

log = logging.getLogger("grctl.worker")


class Worker:
    def __init__(
        self,
        workflows: list[Workflow],
        connection: Connection,
        workflow_logger: logging.Logger | None = None,
        *,
        max_concurrent_steps: int = settings.MAX_CONCURRENT_STEPS,
        ack_wait: float | None = None,
        fetch_batch: int = settings.WORKER_FETCH_BATCH,
        codec: CodecRegistry | None = None,
    ) -> None:
        if not workflows:
            raise ValueError("a worker needs at least one workflow")
        types = [wf.workflow_type for wf in workflows]
        duplicates = sorted({t for t in types if types.count(t) > 1})
        if duplicates:
            raise ValueError(f"workflow types registered twice: {duplicates}")
        if max_concurrent_steps < 1:
            raise ValueError("max_concurrent_steps must be at least 1")
        self._workflows = {wf.workflow_type: wf for wf in workflows}
        self._connection = connection
        self._workflow_logger = workflow_logger or logging.getLogger()
        self.codec = codec or default_codec
        self._ack_wait = ack_wait if ack_wait is not None else ack_wait_from_env()
        self.max_concurrent_steps = max_concurrent_steps
        self.worker_name = make_worker_name(types)
        self.worker_id = make_worker_id(self.worker_name)
        self.ready = asyncio.Event()  # registered and consuming
        self._settled = asyncio.Event()  # ready, or start failed
        self._stopped = asyncio.Event()
        self._startup_error: BaseException | None = None
        self._started = False  # start() may be called once
        self.state = Lifecycle.NEW
        self._stop_task: asyncio.Future[None] | None = None
        self._publisher = Publisher(connection, self.worker_id)
        self._dispatcher = Dispatcher(self._workflows, connection, self._publisher, self._workflow_logger,
                                      codec=self.codec)
        self._capacity = Capacity(max_concurrent_steps)
        self._loops = [self._loop(wf_type, fetch_batch) for wf_type in self._workflows]
        self._commands = CommandServer(connection, self.worker_id, self._dispatcher.terminate_run)
        registering.announce(connection, types, self._settled)

    def _loop(self, wf_type: str, batch: int) -> PullLoop:
        js = self._connection.js
        max_ack_pending = max(settings.WORKER_MAX_ACK_PENDING, self.max_concurrent_steps)

        async def bind() -> JetStreamContext.PullSubscription:
            return await ensure_task_consumer(js, wf_type, self._ack_wait, max_ack_pending=max_ack_pending)

        return PullLoop(subjects.worker_consumer(wf_type), bind, self._dispatcher.handle,
                        capacity=self._capacity, batch=batch, fetch_timeout=settings.WORKER_FETCH_TIMEOUT,
                        heartbeat=settings.heartbeat_for(self._ack_wait))

    def __repr__(self) -> str:
        return f"Worker({self.worker_id!r}, types={list(self._workflows)})"

    @property
    def workflow_types(self) -> list[str]:
        return list(self._workflows)

    @property
    def running_steps(self) -> int:
        return sum(loop.in_flight for loop in self._loops)

    # --- start ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register, consume, and block until ``stop()`` has finished."""
        if self._started:
            raise RuntimeError("this worker was already started")
        self._started = True
        if self.stopping:
            await self._stopped.wait()
            return
        try:
            await self._start()
        except BaseException as exc:
            if self.stopping:  # stop() was called while starting: not an error
                self._settled.set()
                await self._stopped.wait()
                return
            self._startup_error = exc
            self._settled.set()
            await self._abandon()
            raise
        try:
            await self._connection.serve_until(self._stopped)
        except asyncio.CancelledError:
            if not self.stopping:  # cancelled without stop(): shut down at once, in the background
                self._stop_task = asyncio.ensure_future(self._stop(0))
            raise
        except ConnectionLostError:
            log.error("worker %s: the NATS connection was closed for good; stopping", self.worker_id)
            await self.stop(shutdown_timeout=0)
            raise

    async def _start(self) -> None:
        self.state = Lifecycle.STARTING
        log.info("worker %s starting for %s", self.worker_id, self.workflow_types)
        catalog = [wf.type_def() for wf in self._workflows.values()]
        await register(self._connection, self.worker_id, catalog)
        for loop in self._loops:
            self._check_stopping()
            await loop.bind()
        self._check_stopping()
        for loop in self._loops:
            loop.start()
        await self._commands.start()
        if self.state is Lifecycle.STARTING:  # not if stop() came meanwhile
            self.state = Lifecycle.RUNNING
        self.ready.set()
        self._settled.set()
        log.info("worker %s ready (ack wait %.1fs, up to %d concurrent steps)", self.worker_id,
                 self._ack_wait, self.max_concurrent_steps)

    @property
    def stopping(self) -> bool:
        return self.state in (Lifecycle.STOPPING, Lifecycle.STOPPED)

    def _check_stopping(self) -> None:
        if self.stopping:
            raise asyncio.CancelledError

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the worker is registered and consuming; raises the error that made start fail."""
        await asyncio.wait_for(self._settled.wait(), timeout)
        if self._startup_error is not None:
            raise RuntimeError(f"worker failed to start: {self._startup_error}") from self._startup_error
        if not self.ready.is_set():
            raise RuntimeError("worker was stopped before it became ready")

    async def wait_until_ready(self, timeout_ms: float = settings.WORKER_READY_WAIT) -> None:
        """``wait_ready`` under the public SDK's name and behaviour: despite its name ``timeout_ms`` is
        in seconds there too, and the error that made start fail is raised as it is."""
        await asyncio.wait_for(self._settled.wait(), timeout_ms)
        if self._startup_error is not None:
            raise self._startup_error
        if not self.ready.is_set():
            raise RuntimeError("worker was stopped before it became ready")

    # --- stop ----------------------------------------------------------------------------------------

    def terminate_run(self, run_id: str) -> bool:
        """Cancel the step of ``run_id`` running in this worker (no result is published); True if found."""
        return self._dispatcher.terminate_run(run_id)

    async def stop(self, shutdown_timeout: float = settings.SHUTDOWN_TIMEOUT) -> None:
        """Stop taking steps, let in-flight steps finish for up to ``shutdown_timeout`` seconds, cancel the
        rest, close the connection. Safe to call more than once and before ``start()``."""
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop(shutdown_timeout))
        await asyncio.shield(self._stop_task)

    async def _stop(self, shutdown_timeout: float) -> None:
        self.state = Lifecycle.STOPPING
        try:
            for loop in self._loops:
                await loop.stop()
            if self.running_steps:
                log.info("worker %s waiting up to %.1fs for %d step(s)", self.worker_id, shutdown_timeout,
                         self.running_steps)
            if not await self._wait_idle(shutdown_timeout):
                cancelled = self._dispatcher.cancel_all()
                log.warning("worker %s: shutdown timeout, cancelling %d step(s)", self.worker_id, cancelled)
                await self._wait_idle(settings.CANCEL_GRACE)
            await self._abandon()
            await self._connection.close()
        finally:
            self.state = Lifecycle.STOPPED
            self._settled.set()
            self._stopped.set()
            log.info("worker %s stopped", self.worker_id)

    async def _wait_idle(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for pull in self._loops:
            if not await pull.wait_idle(max(0.0, deadline - loop.time())):
                return False
        return True

    async def _abandon(self) -> None:
        """Release subscriptions and background tasks (not the connection)."""
        await self._commands.stop()
        for loop in self._loops:
            await loop.close()
