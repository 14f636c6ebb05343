"""A child process of grctld: one worker process of a generation, or the embedded engine.

    python -m grctl.daemon.process_main worker|engine      (started by the supervisor, spec on stdin)

SIGTERM (or the supervisor going away) stops it gracefully: a worker stops pulling, finishes its
in-flight steps within ``shutdown_timeout`` and cancels the rest. SIGINT is ignored: a terminal's ^C
reaches the supervisor, which decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from grctl import settings
from grctl.daemon.channel import StatusPipe, on_parent_exit, read_spec
from grctl.daemon.logs import configure_logging, workflow_logger
from grctl.daemon.model import DaemonConfig, NatsConfig
from grctl.nats.connection import ConnectionLostError

if TYPE_CHECKING:
    from grctl.nats.connection import Connection

log = logging.getLogger("grctl.daemon.child")

EXIT_IMPORT = 3
EXIT_CONNECT = 4
EXIT_CRASH = 5


def describe_exception(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Connector:
    """Connects with the configured options; reports refused credentials clearly, once."""

    def __init__(self, nats: NatsConfig, status: StatusPipe, failed: asyncio.Event) -> None:
        self.nats = nats
        self.status = status
        self.failed = failed
        self.errors = 0

    closing = False

    async def disconnected_cb(self) -> None:
        if not self.closing:
            log.warning("disconnected from NATS; reconnecting")
            self.status.nats(False)

    async def reconnected(self) -> None:
        self.status.nats(True)

    async def error_cb(self, exc: Exception) -> None:
        self.errors += 1
        text = describe_exception(exc)
        lowered = text.lower()
        problem = ""
        if "authorization" in lowered or "authentication" in lowered or "permissions" in lowered:
            problem = (
                f"NATS refused the credentials ({text}): check nats.user/password, token, nkey or credentials"
            )
        elif isinstance(exc, ssl.SSLError) or "certificate" in lowered:
            problem = f"TLS with NATS failed ({text}): check nats.tls (ca_file, server_name) and the URL"
        if problem:
            log.error("%s", problem)
            self.status.error(problem)
            self.failed.set()
        elif self.errors == 1 or log.isEnabledFor(logging.DEBUG):
            log.warning("NATS connection problem (%s); retrying", text)

    async def connect(self) -> Any:
        from grctl.nats.connection import Connection

        options = self.nats.connect_options()
        options["error_cb"] = self.error_cb
        options["disconnected_cb"] = self.disconnected_cb
        connection = await Connection.connect(**options)
        connection.add_reconnect_listener(self.reconnected)
        return connection


async def _race(main: asyncio.Future[Any], *others: asyncio.Future[Any]) -> bool:
    """Wait for ``main`` or any of ``others``; True when ``main`` finished first."""
    done, _ = await asyncio.wait({main, *others}, return_when=asyncio.FIRST_COMPLETED)
    return main in done


async def _connect_unless_stopped(cfg: DaemonConfig, status: StatusPipe, stop: asyncio.Event,
                                  what: str) -> tuple[Connection, _Connector] | int:
    """Connect with the configured options; an exit status instead when stopped or refused first."""
    failed = asyncio.Event()
    connector = _Connector(cfg.nats, status, failed)
    connecting = asyncio.ensure_future(connector.connect())
    stopped, refused = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(failed.wait())
    try:
        if not await _race(connecting, stopped, refused):
            connecting.cancel()
            return 0 if stop.is_set() else EXIT_CONNECT
    finally:
        stopped.cancel()
        refused.cancel()
    try:
        return connecting.result(), connector
    except Exception as exc:
        message = f"{what}cannot connect to NATS {', '.join(cfg.nats.servers)}: {describe_exception(exc)}"
        log.error("%s", message)
        status.error(message)
        return EXIT_CONNECT


def _stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    on_parent_exit(loop, stop.set)


async def run_worker(cfg: DaemonConfig, status: StatusPipe) -> int:
    from grctl.daemon.workflows import WorkflowImportError, load_workflows, module_files
    from grctl.ops import metrics, multiproc
    from grctl.worker.worker import Worker

    if multiproc.counting_here():  # grctld serves /metrics
        metrics.enable()
    stop = asyncio.Event()
    _stop_signals(stop)
    try:
        workflows = load_workflows(cfg.workflows, cfg.python_path)
    except WorkflowImportError as exc:
        log.error("workflows[%d]: %s", exc.index, exc.message)
        status.error(exc.message, fatal=True, entry=exc.index)
        return EXIT_IMPORT
    connected = await _connect_unless_stopped(cfg, status, stop, "")
    if isinstance(connected, int):
        return connected
    connection, connector = connected
    stopped = asyncio.ensure_future(stop.wait())
    worker = Worker(
        workflows=workflows,
        connection=connection,
        workflow_logger=workflow_logger(cfg.logging),
        max_concurrent_steps=cfg.worker.max_concurrent_steps,
    )
    running = asyncio.ensure_future(worker.start())
    ready = asyncio.ensure_future(worker.wait_ready())
    await asyncio.wait({running, ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if ready.done() and ready.exception() is None:
        types = [wf.workflow_type for wf in workflows]
        log.info(
            "worker ready: consuming %s (up to %d steps at a time)",
            ", ".join(types),
            cfg.worker.max_concurrent_steps,
        )
        status.ready({"pid": os.getpid(), "workflows": types, "files": module_files(cfg.workflows)})
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():  # the worker failed to start, or ended by itself: a crash for the supervisor
        failure = ready.exception() if ready.done() else None
        if failure is None and running.done() and not running.cancelled():
            failure = running.exception()
        message = "the worker stopped" + (f": {describe_exception(failure)}" if failure else " by itself")
        log.error("%s", message)
        status.error(message)
        code = EXIT_CRASH
    ready.cancel()
    log.info("draining: no new steps; waiting up to %gs for the running ones", cfg.shutdown_timeout)
    connector.closing = True
    await worker.stop(shutdown_timeout=cfg.shutdown_timeout)
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
        await asyncio.wait_for(running, timeout=settings.WORKER_EXIT_WAIT)
    await connection.close()
    log.info("worker stopped")
    return code


async def run_engine(cfg: DaemonConfig, status: StatusPipe) -> int:
    from grctl.engine import Engine
    from grctl.engine.endpoints import serve_engine_ops
    from grctl.nats.stream_settings import StreamSettingsError

    stop = asyncio.Event()
    _stop_signals(stop)
    connected = await _connect_unless_stopped(cfg, status, stop, "engine: ")
    if isinstance(connected, int):
        return connected
    connection, connector = connected
    options: dict[str, Any] = {}  # unset: the engine's own defaults
    if cfg.engine.step_timeout is not None:
        options["step_timeout"] = timedelta(seconds=cfg.engine.step_timeout)
    if cfg.engine.wait_timeout is not None:
        options["wait_timeout"] = timedelta(seconds=cfg.engine.wait_timeout)
    options["retention"] = timedelta(seconds=cfg.engine.retention) if cfg.engine.retention else None
    engine = Engine(connection, stream=cfg.engine.stream_settings(), **options)
    ops = await serve_engine_ops(engine, cfg.engine.http.listen)
    try:
        await engine.start()
    except StreamSettingsError as exc:  # e.g. 3 replicas on a server that is not clustered
        log.error("%s", exc)
        status.error(str(exc))
        if ops is not None:
            await ops.stop()
        await connection.close()
        return EXIT_CRASH
    log.info("engine ready")
    status.ready({"pid": os.getpid()})
    code = 0
    try:
        await connection.serve_until(stop)
    except ConnectionLostError as exc:  # a crash for the supervisor, which starts the engine again
        message = f"engine: {exc}"
        log.error("%s", message)
        status.error(message)
        code = EXIT_CRASH
    connector.closing = True
    await engine.stop(cfg.shutdown_timeout if code == 0 else 5.0)
    if ops is not None:
        await ops.stop()
    await connection.close()
    log.info("engine stopped")
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    role = args[0] if args else ""
    if role not in ("worker", "engine"):
        print("usage: python -m grctl.daemon.process_main worker|engine (started by grctld)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    status = StatusPipe.from_environment()
    spec = read_spec()
    cfg = DaemonConfig.decode(bytes(spec.config))
    configure_logging(
        cfg.logging, cfg.secrets(), role=role, generation=spec.generation if role == "worker" else None
    )
    runner = run_worker if role == "worker" else run_engine
    try:
        return asyncio.run(runner(cfg, status))
    except Exception as exc:
        log.exception("%s process failed", role)
        status.error(f"{role} process failed: {describe_exception(exc)}")
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main())
