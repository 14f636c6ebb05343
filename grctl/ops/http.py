"""The HTTP listener of a process, on its own event loop (aiohttp): ``/metrics`` (Prometheus text
format), ``/healthz`` (200 while the loop runs: answering at all proves it) and ``/readyz`` (200, or 503
with a short reason, from a readiness check the process supplies). The engine mounts its web console
at ``/`` of the same listener (``mount``).

It runs on the event loop it reports about, so a blocked loop shows as a health check that times out.
The three endpoints answer GET and HEAD only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from grctl import settings
from grctl.ops.listen import Endpoint

log = logging.getLogger("grctl.ops.http")


Readiness = Callable[[], str | None]  # None when ready, else why not
Mount = Callable[[web.Application], None]  # adds routes (the console) to the listener's application

TEXT = "text/plain"


class OpsServer:
    """Serves ``registry`` on ``/metrics`` and ``ready()`` on ``/readyz``. ``collect_in_thread``: the
    registry reads files (grctld's multiprocess directory), so exposition runs off the loop. ``mount``
    adds more routes; without it every other path is a 404 that names the three endpoints."""

    def __init__(self, endpoint: Endpoint, registry: CollectorRegistry, ready: Readiness,
                 collect_in_thread: bool = False, mount: Mount | None = None) -> None:
        self.endpoint = endpoint
        self._registry = registry
        self._ready = ready
        self._in_thread = collect_in_thread
        self._mount = mount
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system chose for port 0)."""
        server = self._site._server if self._site is not None else None
        sockets = getattr(server, "sockets", None)
        if not sockets:
            return self.endpoint.port
        return int(sockets[0].getsockname()[1])

    def application(self) -> web.Application:
        app = web.Application(handler_args={"max_field_size": settings.HTTP_MAX_HEADER_BYTES})
        for path, handler in (("/metrics", self._metrics), ("/healthz", self._healthz),
                              ("/readyz", self._readyz)):
            app.router.add_get(path, handler)  # HEAD too
            app.router.add_route("*", path, _only_get)
        if self._mount is not None:
            self._mount(app)
        else:
            app.router.add_route("*", "/{tail:.*}", _not_found)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None,
                                     shutdown_timeout=settings.HTTP_SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.endpoint.host, self.endpoint.port, reuse_address=True)
        try:
            await self._site.start()
        except OSError:
            await self.stop()
            raise
        log.info("serving /metrics, /healthz and /readyz on http://%s:%d", self.endpoint.host, self.port)

    async def stop(self) -> None:
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            try:
                await asyncio.wait_for(runner.cleanup(), settings.HTTP_SHUTDOWN_TIMEOUT + 1.0)
            except TimeoutError:
                log.warning("the HTTP listener did not close in time")

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._in_thread:
            body = await asyncio.to_thread(generate_latest, self._registry)
        else:
            body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n", content_type=TEXT)

    async def _readyz(self, request: web.Request) -> web.Response:
        reason = self._ready()
        if reason is None:
            return web.Response(text="ready\n", content_type=TEXT)
        return web.Response(status=503, text=f"not ready: {reason}\n", content_type=TEXT)


async def _only_get(request: web.Request) -> web.Response:
    return web.Response(status=405, text="only GET and HEAD\n", content_type=TEXT,
                        headers={"Allow": "GET, HEAD"})


async def _not_found(request: web.Request) -> web.Response:
    return web.Response(status=404, text="not found: try /metrics, /healthz or /readyz\n", content_type=TEXT)
