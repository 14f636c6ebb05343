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
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from grctl import eventloop, settings
from grctl.daemon.channel import ReadyInfo, Role, StatusPipe, on_parent_exit, read_spec
from grctl.daemon.logs import configure_logging, workflow_logger
from grctl.daemon.model import DaemonConfig, NatsConfig
from grctl.lifecycle import cancel, on_signals, until_stopped
from grctl.nats.connection import ConnectionLostError
from grctl.nats.requests import permission_violation

if TYPE_CHECKING:
    from grctl.nats.connection import Connection

log = logging.getLogger("grctl.daemon.child")

EXIT_IMPORT = 3
EXIT_CONNECT = 4
EXIT_CRASH = 5
EXIT_REFUSED = 6  # the new code would strand live runs


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
        denial = permission_violation(exc)
        if denial is not None:
            problem = f"NATS refused a permission: {denial}"
        elif "authorization" in lowered or "authentication" in lowered:
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


async def _connect_unless_stopped(cfg: DaemonConfig, status: StatusPipe, stop: asyncio.Event,
                                  what: str) -> tuple[Connection, _Connector] | int:
    """Connect with the configured options; an exit status instead when stopped or refused first."""
    failed = asyncio.Event()
    connector = _Connector(cfg.nats, status, failed)
    connecting = asyncio.ensure_future(connector.connect())
    if not await until_stopped(connecting, stop, failed):
        await cancel(connecting)
        return 0 if stop.is_set() else EXIT_CONNECT
    try:
        return connecting.result(), connector
    except Exception as exc:
        message = f"{what}cannot connect to NATS {', '.join(cfg.nats.servers)}: {describe_exception(exc)}"
        log.error("%s", message)
        status.error(message)
        return EXIT_CONNECT


@contextlib.contextmanager
def _stop_signals(stop: asyncio.Event) -> Iterator[None]:
    """``stop`` is set by SIGTERM or by the supervisor going away (stdin closed)."""
    on_parent_exit(asyncio.get_running_loop(), stop.set)
    with on_signals(lambda _: stop.set(), signal.SIGTERM):
        yield


async def run_worker(cfg: DaemonConfig, status: StatusPipe, replaces: list[str] | None = None) -> int:
    stop = asyncio.Event()
    with _stop_signals(stop):
        return await _serve_worker(cfg, status, replaces, stop)


async def _serve_worker(cfg: DaemonConfig, status: StatusPipe, replaces: list[str] | None,
                        stop: asyncio.Event) -> int:
    from grctl.daemon.strand import StrandingRefused, check_before_serving
    from grctl.daemon.workflows import WorkflowImportError, load_workflows, module_files
    from grctl.ops import metrics, multiproc
    from grctl.worker.worker import Worker

    if multiproc.counting_here():  # grctld serves /metrics
        metrics.enable()
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
    try:  # before registering: the new catalog must not replace the one live runs need
        await check_before_serving(connection, workflows, replaces, cfg.reload.allow_missing_handlers,
                                   f"grctld-{os.getpid()}")
    except StrandingRefused as exc:
        log.error("%s", exc)
        status.error(str(exc), fatal=True)
        await connection.close()
        return EXIT_REFUSED
    worker = Worker(
        workflows=workflows,
        connection=connection,
        workflow_logger=workflow_logger(cfg.logging),
        max_concurrent_steps=cfg.worker.max_concurrent_steps,
    )
    running = asyncio.ensure_future(worker.start())
    ended = asyncio.Event()  # the worker ended by itself (it should not)
    running.add_done_callback(lambda _: ended.set())
    ready = asyncio.ensure_future(worker.wait_ready())
    await until_stopped(ready, stop, ended)
    code = 0
    if ready.done() and ready.exception() is None:
        types = [wf.workflow_type for wf in workflows]
        log.info(
            "worker ready: consuming %s (up to %d steps at a time)",
            ", ".join(types),
            cfg.worker.max_concurrent_steps,
        )
        status.ready(ReadyInfo(pid=os.getpid(), workflows=types, files=module_files(cfg.workflows)))
        await until_stopped(running, stop)
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
    stop = asyncio.Event()
    with _stop_signals(stop):
        return await _serve_engine(cfg, status, stop)


async def _serve_engine(cfg: DaemonConfig, status: StatusPipe, stop: asyncio.Event) -> int:
    from grctl.console.serve import console_for
    from grctl.engine import Engine, serve_engine
    from grctl.nats.stream_settings import StreamSettingsError

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

    def ready() -> None:
        log.info("engine ready")
        status.ready(ReadyInfo(pid=os.getpid()))

    code = 0
    try:
        await serve_engine(connection, engine, stop, http_listen=cfg.engine.http.listen, on_ready=ready,
                           stop_timeout=cfg.shutdown_timeout, console=console_for(cfg.engine.http.console))
    except (StreamSettingsError, ConnectionLostError) as exc:  # e.g. 3 replicas on a single server
        message = str(exc) if isinstance(exc, StreamSettingsError) else f"engine: {exc}"
        log.error("%s", message)
        status.error(message)
        code = EXIT_CRASH  # the supervisor starts the engine again
    finally:
        connector.closing = True
        await connection.close()
    log.info("engine stopped")
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in set(Role):
        print("usage: python -m grctl.daemon.process_main worker|engine (started by grctld)", file=sys.stderr)
        return 2
    role = Role(args[0])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    status = StatusPipe.from_environment()
    spec = read_spec()
    cfg = DaemonConfig.decode(bytes(spec.config))
    configure_logging(
        cfg.logging, cfg.secrets(), role=role, generation=spec.generation if role is Role.WORKER else None
    )
    try:
        if role is Role.WORKER:
            return eventloop.run(run_worker(cfg, status, spec.replaces))
        return eventloop.run(run_engine(cfg, status))
    except Exception as exc:
        log.exception("%s process failed", role)
        status.error(f"{role} process failed: {describe_exception(exc)}")
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main())
