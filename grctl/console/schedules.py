"""The Schedules page and its actions (trigger now, pause, resume): the schedules in force as the
engine reports them, and the same ``Client`` calls as ``grctl schedule``, each after a confirmation."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from grctl.console.actions import Form, Refused, attempt
from grctl.console.app import of

DONE = {"schedule_trigger": "Triggered.", "schedule_pause": "Paused: it fires no more until resumed.",
        "schedule_resume": "Resumed: it fires from its next tick."}


async def schedules_page(request: web.Request) -> web.Response:
    console = of(request)
    error, views = "", []
    try:
        views = await attempt(console.client.list_schedules())
    except Refused as exc:
        error = str(exc)
    done = DONE.get(request.query.get("done", ""), "")
    return console.render(request, "schedules.html", views=views, error=error, notice=done,
                          done_run=request.query.get("run", ""))


async def act(request: web.Request) -> web.Response:
    """A schedule action: its confirmation page, or (``confirmed``) the action and the Schedules page."""
    console = of(request)
    data = await request.post()
    form = Form.read(data)
    if form.action not in DONE:
        raise web.HTTPBadRequest(text="unknown action\n")
    try:
        if data.get("confirmed") != "1":
            return console.render(request, "confirm.html", form=form, error="", bulk=None,
                                  post_to="/schedule")
        started = ""
        if form.action == "schedule_trigger":
            outcome = await attempt(console.client.trigger_schedule(form.wf_id))
            started = outcome.wf_id if outcome.action == "started" else ""
        elif form.action == "schedule_pause":
            await attempt(console.client.pause_schedule(form.wf_id, form.reason))
        else:
            await attempt(console.client.resume_schedule(form.wf_id))
    except Refused as exc:
        return console.render(request, "confirm.html", status=409, form=form, error=str(exc), bulk=None,
                              post_to="/schedule")
    done = urlencode({"done": form.action, "run": started})
    raise web.HTTPSeeOther(f"{request['prefix']}/schedules?{done}")
