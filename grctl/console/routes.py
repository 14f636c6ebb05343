"""The console's routes on the engine's HTTP listener: its pages, its actions and the static files
shipped in this package, behind the access checks."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from grctl.console import access, actions, pages, schedules
from grctl.console.app import CONSOLE, Console
from grctl.console.settings import ConsoleSettings
from grctl.engine.engine import Engine
from grctl.ops.http import Mount


def mounter(engine: Engine, settings: ConsoleSettings) -> Mount:
    """The ``mount`` hook of the engine's listener that adds the console (see ``grctl.ops.http``)."""
    def mount(app: web.Application) -> None:
        console = Console(engine, settings)
        app[CONSOLE] = console
        app.middlewares.append(access.middleware(settings))
        app.on_startup.append(console.on_startup)
        app.on_cleanup.append(console.on_cleanup)
        app.router.add_get("/", pages.runs_page)
        app.router.add_get("/run", pages.run_page)
        app.router.add_get("/run/live", pages.run_live)
        app.router.add_get("/workers", pages.workers_page)
        app.router.add_get("/start", actions.start_form)
        app.router.add_post("/act", actions.act)
        app.router.add_get("/schedules", schedules.schedules_page)
        app.router.add_post("/schedule", schedules.act)
        app.router.add_static("/static", str(resources.files("grctl.console") / "static"))
        app.router.add_route("*", "/{tail:.*}", pages.not_found)

    return mount
