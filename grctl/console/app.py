"""What every page of the console shares: the engine it shows, the ``Client`` its actions go through
and the templates (Jinja2, escaping every value)."""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from prometheus_client import REGISTRY

from grctl.client.client import RETRYABLE_STATUSES, Client
from grctl.console import access, text
from grctl.console.rates import Rates
from grctl.console.reads import Histories, Registrations
from grctl.console.settings import ConsoleSettings
from grctl.engine.engine import Engine
from grctl.engine.runindex import RunIndex
from grctl.models.common import RunStatus
from grctl.settings import CLI_RETRY_FOR, CONSOLE_TIMELINE_BARS

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger("grctl.console")

ACTIVE = frozenset({str(RunStatus.pending), str(RunStatus.scheduled), str(RunStatus.running)})
RETRYABLE = frozenset(str(s) for s in RETRYABLE_STATUSES)
CONSOLE: web.AppKey[Console] = web.AppKey("console")


class Console:
    def __init__(self, engine: Engine, settings: ConsoleSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.client = Client(engine.connection, retry_for=CLI_RETRY_FOR)  # as grctl's commands
        self.registrations = Registrations()
        self.histories = Histories()
        self.rates = Rates(REGISTRY)

    @functools.cached_property
    def templates(self) -> jinja2.Environment:
        """Made (and Jinja2 imported) when the first page is asked: an idle console costs no memory."""
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("grctl.console", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters.update(pretty=text.pretty, details=text.details, seconds=text.seconds,
                           query=lambda params: urlencode(params, doseq=True))
        env.globals.update(age=text.age, took=text.took, active=ACTIVE, retryable=RETRYABLE,
                           bar_limit=CONSOLE_TIMELINE_BARS)
        return env

    def render(self, request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
        text = self.templates.get_template(name).render(
            prefix=request["prefix"], role=request["role"], csrf=request["csrf"],
            csrf_field=access.CSRF_FIELD, admin=request["role"] == access.ADMIN, path=request.path, **values)
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    async def runs(self) -> RunIndex:
        """The engine's run index, with what was stored since its last read (a run just started too);
        when that read fails, as it is (at most a second behind)."""
        if self.engine.runs.loaded.is_set():
            with contextlib.suppress(Exception):
                await self.engine.runs.catch_up()
        return self.engine.runs

    async def on_startup(self, app: web.Application) -> None:
        await self.registrations.start(self.engine.connection.nc)
        self.rates.start()

    async def on_cleanup(self, app: web.Application) -> None:
        await self.rates.stop()
        await self.registrations.stop()


def of(request: web.Request) -> Console:
    return request.app[CONSOLE]
