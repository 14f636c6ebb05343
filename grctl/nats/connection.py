"""An owned NATS connection: whoever opens it closes it; there is no process-wide singleton.

nats-py gives up on a connection for good in a few cases (the server refused a protocol line, the
reconnect attempts ran out). A component must not go on with a dead connection: ``lost`` is set then,
and the programs built on a connection exit non-zero so that their supervisor starts them again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from nats.aio.client import Client as NATSClient
from nats.js import JetStreamContext

from grctl import settings
from grctl.lifecycle import cancel, until_stopped
from grctl.models.common import utcnow
from grctl.nats.direct import forget_stream_layout
from grctl.nats.requests import disconnected, guard, refused
from grctl.ops import metrics

log = logging.getLogger(__name__)

# Where the servers may come from, first found wins: ours, its documented lower-case spelling, and the
# public SDK's variable.
SERVER_ENVIRONMENT = ("GRCTL_NATS_SERVERS", "grctl_NATS_SERVERS", "ENGINE_NATS_SERVERS")


T = TypeVar("T")


class ConnectionLostError(ConnectionError):
    """The NATS connection was closed for good without the component asking for it."""


def split_servers(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("["):
        value = json.loads(raw)
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ValueError(f"expected a JSON list of URLs, got {raw!r}")
        return [s.strip() for s in value if s.strip()]
    return [s.strip() for s in raw.split(",") if s.strip()]


def servers_from_env(environ: dict[str, str] | None = None) -> list[str]:
    """NATS servers from ``GRCTL_NATS_SERVERS`` (or its documented lower-case spelling, or the public
    SDK's ``ENGINE_NATS_SERVERS``), comma-separated or a JSON list; the default otherwise."""
    env = os.environ if environ is None else environ
    for name in SERVER_ENVIRONMENT:
        raw = env.get(name)
        if raw and raw.strip():
            servers = split_servers(raw)
            if servers:
                return servers
    return list(settings.NATS_SERVERS)


class Connection:
    """A NATS connection with its JetStream context."""

    def __init__(self, nc: NATSClient) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._closing = False
        self._reconnect_listeners: set[Callable[[], Awaitable[None]]] = set()
        self._listener_tasks: set[asyncio.Future[None]] = set()
        self.lost = asyncio.Event()  # closed for good, not by close()
        self.up_since: datetime = utcnow()  # when the current connection to a server was made

    @classmethod
    async def connect(
        cls, servers: list[str] | str | None = None, name: str | None = None, **options: Any
    ) -> Connection:
        """Connect to NATS. ``servers`` defaults to the environment (see ``servers_from_env``).

        Extra keyword options go to ``nats.connect`` (credentials, TLS, reconnect settings...).
        Reconnection never gives up unless ``max_reconnect_attempts`` says otherwise.
        """
        if servers is None:
            servers = servers_from_env()
        elif isinstance(servers, str):
            servers = split_servers(servers)
        conn = cls(NATSClient())

        async def on_error(exc: Exception) -> None:
            log.warning("NATS error: %s", exc)

        async def on_disconnected() -> None:
            disconnected(conn._nc)
            if not conn._closing:
                log.warning("disconnected from NATS")

        async def on_reconnected() -> None:
            conn.up_since = utcnow()
            forget_stream_layout(conn._nc)  # the stream may have changed while we were away
            metrics.nats_reconnected()
            url = conn._nc.connected_url
            log.info("reconnected to NATS at %s", url.netloc if url else "?")
            for listener in list(conn._reconnect_listeners):
                task = asyncio.ensure_future(listener())
                conn._listener_tasks.add(task)
                task.add_done_callback(conn._listener_tasks.discard)

        user_closed_cb = options.pop("closed_cb", None)

        async def on_closed() -> None:
            if not conn._closing:
                log.error("the NATS connection was closed for good (%s)", conn._nc.last_error or "no error")
                conn.lost.set()
            if user_closed_cb is not None:
                await user_closed_cb()

        options["closed_cb"] = on_closed
        user_error_cb = options.pop("error_cb", None) or on_error

        async def on_any_error(exc: Exception) -> None:
            refused(conn._nc, exc)  # a request refused for lack of permission fails at once
            await user_error_cb(exc)

        options["error_cb"] = on_any_error
        options.setdefault("max_reconnect_attempts", settings.MAX_RECONNECT_ATTEMPTS)
        options.setdefault("reconnect_time_wait", settings.RECONNECT_WAIT)
        options.setdefault("connect_timeout", settings.CONNECT_TIMEOUT)
        options.setdefault("disconnected_cb", on_disconnected)
        options.setdefault("reconnected_cb", on_reconnected)
        await conn._nc.connect(servers=servers, name=name, **options)
        conn.up_since = utcnow()
        return conn

    @classmethod
    def reset(cls) -> None:
        """Does nothing: every ``connect()`` opens a new connection, so there is no shared one to
        forget (the public SDK keeps a process-wide instance and uses this to drop it)."""

    def add_reconnect_listener(self, listener: Callable[[], Awaitable[None]]) -> None:
        """Call ``listener`` (in a task of its own) after every reconnection, e.g. to re-create state a
        restarted server lost, such as in-memory consumers."""
        self._reconnect_listeners.add(listener)

    def remove_reconnect_listener(self, listener: Callable[[], Awaitable[None]]) -> None:
        self._reconnect_listeners.discard(listener)

    @property
    def nc(self) -> NATSClient:
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        return self._js

    @property
    def is_closed(self) -> bool:
        return self._nc.is_closed

    @property
    def is_connected(self) -> bool:
        return self._nc.is_connected

    async def interruptible(self, operation: Awaitable[T], subject: str = "") -> T:
        """Await ``operation`` (a request to ``subject``); if the connection drops meanwhile, cancel it
        and raise ``ConnectionResetError`` at once, and ``PermissionDeniedError`` if the server refuses
        this user ``subject`` (see ``grctl.nats.requests``)."""
        return await guard(self._nc, operation, subject)

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Wait until ``stop`` is set; raise ``ConnectionLostError`` if the connection is closed for good
        first (a component cannot go on without it)."""
        stopped = asyncio.ensure_future(stop.wait())
        await until_stopped(stopped, self.lost)
        await cancel(stopped)
        if not stop.is_set():
            raise ConnectionLostError("the NATS connection was closed for good")

    async def close(self) -> None:
        """Flush and close; safe to call more than once."""
        if self._nc.is_closed:
            return
        self._closing = True
        await self._nc.close()

