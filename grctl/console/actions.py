"""The console's actions: cancel, terminate, send an event, start a run, and cancel or terminate in bulk
the active runs a filter finds. Each is a form posted twice: first it shows what will happen and asks
for confirmation, then (``confirmed=1``) it is done through ``Client``, the API the command line uses,
and a refusal is explained with the command line's words."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import msgspec
import nats.errors
from aiohttp import web
from multidict import MultiMapping
from ulid import ULID

from grctl import settings
from grctl.client.refusal import explain
from grctl.console import reads
from grctl.console.app import ACTIVE, RETRYABLE, Console, of
from grctl.console.query import RunsQuery
from grctl.models.common import RunInfo, utcnow
from grctl.models.errors import WorkflowError
from grctl.workflow.handle import WorkflowHandle

DONE = {"cancel": "Cancel requested: the run ends after its running step.", "terminate": "Terminated.",
        "send": "Event sent.", "start": "Run started.",
        "retry": "Retried: this new run resumes at the step the earlier one ended in."}
BULK = {"bulk_cancel": ("cancel", ACTIVE), "bulk_terminate": ("terminate", ACTIVE),
        "bulk_retry": ("retry", RETRYABLE)}  # action → (verb, the statuses it acts on)


class Refused(Exception):
    """The action was not done; the message says why."""


@dataclass(frozen=True)
class Form:
    action: str
    wf_id: str
    run_id: str
    reason: str
    event: str
    payload: str
    wf_type: str
    input: str
    timeout: str

    @classmethod
    def read(cls, data: MultiMapping[Any]) -> Form:
        def text(key: str) -> str:
            return str(data.get(key, "")).strip()

        return cls(text("action"), text("id"), text("run"), text("reason"), text("event"), text("payload"),
                   text("type"), text("input"), text("timeout"))


def json_field(name: str, text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"{name} is not valid JSON: {exc}") from None


async def attempt(call: Awaitable[Any], wf_id: str = "", wf_type: str = "") -> Any:
    """Await ``call``; what goes wrong becomes ``Refused`` with the command line's explanation."""
    try:
        return await call
    except WorkflowError as exc:
        raise Refused(explain(exc, wf_id, wf_type)) from None
    except ValueError as exc:  # a name the protocol cannot carry
        raise Refused(f"invalid {exc}") from None
    except nats.errors.NoRespondersError:
        raise Refused("no engine answers (is `grctl engine` running?)") from None
    except (nats.errors.TimeoutError, TimeoutError):
        raise Refused("the engine did not answer in time") from None
    except (nats.errors.ConnectionClosedError, nats.errors.NoServersError) as exc:
        raise Refused(f"lost the connection to NATS: {exc}") from None


async def start_form(request: web.Request) -> web.Response:
    console = of(request)
    types = [e.type for e in await reads.registry(console.engine.connection.nc)]
    form = Form.read(request.query)
    return console.render(request, "start.html", types=types, form=form, error="")


async def act(request: web.Request) -> web.StreamResponse:
    console = of(request)
    data = await request.post()
    form = Form.read(data)
    confirmed = data.get("confirmed") == "1"
    if form.action in BULK:
        return await _bulk(request, console, form, RunsQuery.from_params(data), confirmed)
    if form.action not in DONE:
        raise web.HTTPBadRequest(text="unknown action\n")
    try:
        if form.action == "start":
            _check_start(form)
        elif form.action == "send":
            json_field("the payload", form.payload)
        if not confirmed:
            return console.render(request, "confirm.html", form=form, error="", bulk=None)
        target = await _do(console, form)
    except Refused as exc:
        page = "start.html" if form.action == "start" and not confirmed else "confirm.html"
        types = [e.type for e in await reads.registry(console.engine.connection.nc)]
        return console.render(request, page, status=409, form=form, error=str(exc), bulk=None, types=types)
    location = urlencode({"id": target.wf_id, "run": target.id, "done": form.action})
    raise web.HTTPSeeOther(f"{request['prefix']}/run?{location}")


def _check_start(form: Form) -> None:
    if not form.wf_type:
        raise Refused("choose the workflow type to start")
    json_field("the input", form.input)
    if form.timeout:
        try:
            if float(form.timeout) <= 0:
                raise ValueError
        except ValueError:
            raise Refused("the run timeout must be a positive number of seconds") from None


async def _do(console: Console, form: Form) -> RunInfo:
    """Do one confirmed action; the run it concerns."""
    client = console.client
    if form.action == "start":
        wf_id = form.wf_id or str(ULID())
        handle = await attempt(client.start_workflow(form.wf_type, wf_id, json_field("the input", form.input),
                                                     timeout=float(form.timeout) if form.timeout else None),
                               wf_id, form.wf_type)
        await handle.close()
        return RunInfo(id=handle.run_id, wf_id=wf_id, wf_type=form.wf_type)
    if form.action == "retry":
        return await attempt(client.retry_run(form.wf_id, form.run_id or None, form.reason), form.wf_id)
    latest: RunInfo = await attempt(client.describe(form.wf_id), form.wf_id)
    if form.run_id and latest.id != form.run_id:
        raise Refused(f"run {form.run_id} is no longer the latest run of workflow {form.wf_id!r} (the latest "
                      f"is {latest.id}); the engine acts on the latest run only")
    handle = WorkflowHandle(latest, client.connection, client.id)
    if form.action == "cancel":
        await attempt(handle.cancel(form.reason or None), form.wf_id)
    elif form.action == "terminate":
        await attempt(handle.terminate(form.reason or None), form.wf_id)
    else:
        await attempt(handle.send(form.event, json_field("the payload", form.payload)), form.wf_id)
    return latest


async def _bulk(request: web.Request, console: Console, form: Form, query: RunsQuery,
                confirmed: bool) -> web.Response:
    """Cancel or terminate the active runs among those ``query`` finds, or retry the ended ones that can
    be (at most CONSOLE_BULK_MAX)."""
    verb, eligible = BULK[form.action]
    now = utcnow()
    wanted = query.filter(now)
    statuses = (wanted.statuses & eligible) if wanted.statuses else eligible
    wanted = replace(wanted, statuses=frozenset(statuses))  # every other field of the filter kept (stuck too)
    index = await console.runs()
    found = [msgspec.msgpack.decode(raw, type=RunInfo)
             for raw, _ in index.page(now, wanted, settings.CONSOLE_BULK_MAX)] if statuses else []
    found = [info for info in found if not info.retried_as]  # a retried run's retry is the latest
    if not confirmed:
        return console.render(request, "confirm.html", form=form, error="", bulk={
            "verb": verb, "runs": found, "query": query, "limit": settings.CONSOLE_BULK_MAX})
    done: list[RunInfo] = []
    refused: list[tuple[RunInfo, str]] = []
    gate = asyncio.Semaphore(settings.CONSOLE_BULK_PARALLEL)

    async def one(info: RunInfo) -> None:
        handle = WorkflowHandle(info, console.client.connection, console.client.id)
        async with gate:
            try:
                if verb == "retry":
                    await attempt(console.client.retry_run(info.wf_id, info.id, form.reason), info.wf_id)
                else:
                    ending = handle.cancel if verb == "cancel" else handle.terminate
                    await attempt(ending(form.reason or None), info.wf_id)
                done.append(info)
            except Refused as exc:
                refused.append((info, str(exc)))

    await asyncio.gather(*(one(info) for info in found))
    return console.render(request, "bulk_done.html", verb=verb, done=done, refused=refused, query=query)
