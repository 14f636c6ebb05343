"""A small HTTP/1.1 listener on the process's own event loop: ``/metrics`` (Prometheus text format),
``/healthz`` (200 while the loop runs: answering at all proves it) and ``/readyz`` (200, or 503 with a
short reason, from a readiness check the process supplies).

It runs on the event loop it reports about, so a blocked loop shows as a health check that times out.
Only GET and HEAD are served; every answer closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from grctl import settings
from grctl.ops.listen import Endpoint

log = logging.getLogger("grctl.ops.http")


Readiness = Callable[[], str | None]  # None when ready, else why not


class OpsServer:
    """Serves ``registry`` on ``/metrics`` and ``ready()`` on ``/readyz``. ``collect_in_thread``: the
    registry reads files (grctld's multiprocess directory), so exposition runs off the loop."""

    def __init__(self, endpoint: Endpoint, registry: CollectorRegistry, ready: Readiness,
                 collect_in_thread: bool = False) -> None:
        self.endpoint = endpoint
        self._registry = registry
        self._ready = ready
        self._in_thread = collect_in_thread
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system chose for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.endpoint.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.endpoint.host, self.endpoint.port,
                                                  reuse_address=True)
        log.info("serving /metrics, /healthz and /readyz on http://%s:%d", self.endpoint.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), settings.HTTP_READ_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                return
            if len(head) > settings.HTTP_MAX_HEADER_BYTES:
                await self._send(writer, 431, "text/plain", b"request header too large\n")
                return
            method, _, rest = head.decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                await self._send(writer, 405, "text/plain", b"only GET and HEAD\n")
                return
            status, ctype, body = await self._answer(path)
            await self._send(writer, status, ctype, b"" if method == "HEAD" else body, len(body))
        except Exception:
            log.exception("answering an HTTP request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            if self._in_thread:
                body = await asyncio.to_thread(generate_latest, self._registry)
            else:
                body = generate_latest(self._registry)
            return 200, CONTENT_TYPE_LATEST, body
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/readyz":
            reason = self._ready()
            if reason is None:
                return 200, "text/plain; charset=utf-8", b"ready\n"
            return 503, "text/plain; charset=utf-8", f"not ready: {reason}\n".encode()
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz or /readyz\n"

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, ctype: str, body: bytes,
                    length: int | None = None) -> None:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too "
                  "Large", 503: "Service Unavailable"}.get(status, "")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n")
        writer.write(head.encode("latin-1") + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
