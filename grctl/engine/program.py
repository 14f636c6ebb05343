"""The engine as a program: start it, serve until stopped (or the connection is lost for good), stop it.

``serve_engine`` is that lifecycle on an open connection, shared by ``grctl engine`` (``run_engine``,
which also connects and handles SIGINT/SIGTERM) and grctld's embedded engine process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from grctl import settings
from grctl.engine.endpoints import MountFor, serve_engine_ops
from grctl.engine.engine import Engine
from grctl.engine.snapshot import DEFAULT_RETENTION, DEFAULT_STEP_TIMEOUT, DEFAULT_WAIT_TIMEOUT
from grctl.lifecycle import cancel, on_signals, until_stopped
from grctl.nats.connection import Connection
from grctl.nats.stream_settings import StreamSettings

log = logging.getLogger("grctl.engine.engine")


async def serve_engine(connection: Connection, engine: Engine, stop: asyncio.Event, *,
                       http_listen: str | None = None, on_ready: Callable[[], None] | None = None,
                       stop_timeout: float = settings.ENGINE_STOP_TIMEOUT,
                       console: MountFor | None = None) -> None:
    """Serve /metrics, /healthz and /readyz on ``http_listen`` (if set), and the web console there when
    ``console`` is given (``grctl.console.serve``), start ``engine``, call
    ``on_ready``, and serve until ``stop`` is set; then stop the engine (within ``stop_timeout``, or
    at once when the connection is gone). A stop while the engine waits for JetStream ends the start.

    Raises what ``engine.start()`` raises (a stream it cannot set up) and ``ConnectionLostError`` when
    the connection is closed for good: the process should exit with an error and be started again."""
    ops = await serve_engine_ops(engine, http_listen, console)
    try:
        starting = asyncio.ensure_future(engine.start())
        if not await until_stopped(starting, stop):
            await cancel(starting)
            return
        starting.result()
        if on_ready is not None:
            on_ready()
        await connection.serve_until(stop)
        log.info("stopping")
    finally:
        lost = connection.lost.is_set()
        await engine.stop(timeout=settings.ENGINE_STOP_TIMEOUT_LOST if lost else stop_timeout)
        if ops is not None:
            await ops.stop()


async def run_engine(servers: list[str] | None = None, *, memory: bool = False,
                     step_timeout: timedelta = DEFAULT_STEP_TIMEOUT,
                     wait_timeout: timedelta = DEFAULT_WAIT_TIMEOUT,
                     retention: timedelta | None = DEFAULT_RETENTION,
                     stop_event: asyncio.Event | None = None,
                     stream: StreamSettings | None = None,
                     connect_options: dict[str, Any] | None = None,
                     http_listen: str | None = None, console: MountFor | None = None) -> None:
    """The ``grctl engine`` program: connect, then ``serve_engine`` until SIGINT/SIGTERM (or
    ``stop_event``), then close. ``http_listen`` (HOST:PORT): serve /metrics, /healthz and /readyz there,
    and the web console when ``console`` is given.

    Raises ``ConnectionLostError`` when the NATS connection is closed for good, so the program exits
    non-zero and its supervisor starts it again. ``connect_options`` go to ``Connection.connect``
    (credentials, TLS, reconnection: see ``NatsConfig.connect_options``); ``servers``, when given,
    replace the servers they name."""
    stop = stop_event or asyncio.Event()
    with on_signals(lambda _: stop.set(), signal.SIGINT, signal.SIGTERM):
        # Until NATS answers, a stop request must still be heard (the connection attempts go on for ever).
        options: dict[str, Any] = {"name": "grctl-engine", **(connect_options or {})}
        if servers is not None:
            options["servers"] = servers
        connecting = asyncio.ensure_future(Connection.connect(**options))
        if not await until_stopped(connecting, stop):
            await cancel(connecting)
            log.info("stopped before a connection to NATS was made")
            return
        connection = connecting.result()
        engine = Engine(connection, step_timeout=step_timeout, wait_timeout=wait_timeout, memory=memory,
                        retention=retention, stream=stream)
        try:
            await serve_engine(connection, engine, stop, http_listen=http_listen, console=console)
        finally:
            await connection.close()
