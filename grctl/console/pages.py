"""The pages that read: Runs (the index, filtered and paged), Run (its info, history, store and
timeline, with a live update while it moves) and Workers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from grctl import settings
from grctl.console import reads, timeline
from grctl.console.actions import DONE
from grctl.console.app import of
from grctl.console.query import RunsQuery, cursor_text
from grctl.engine.runindex import STUCK, RunFilter
from grctl.models.common import RunInfo, utcnow
from grctl.models.history import HistoryEvent, HistoryKind
from grctl.models.records import RegistryEntry
from grctl.nats import subjects

H = HistoryKind
STATUS_ORDER = ["running", "pending", "scheduled", "failed", "timed_out", "terminated", "cancelled",
                "completed"]


async def runs_page(request: web.Request) -> web.Response:
    console = of(request)
    query = RunsQuery.from_params(request.query)
    index = await console.runs()
    loaded = index.loaded.is_set()
    now = utcnow()
    wanted = query.filter(now)
    found, tally = index.overview(now, wanted, settings.CONSOLE_PAGE_SIZE + 1, query.after)
    counts: dict[str, int] = {}
    for (wf_type, status), n in tally.items():
        if not wanted.wf_type or wf_type == wanted.wf_type:
            counts[status] = counts.get(status, 0) + n
    rows = [msgspec.msgpack.decode(raw, type=RunInfo) for raw, _ in found[:settings.CONSOLE_PAGE_SIZE]]
    more = len(found) > settings.CONSOLE_PAGE_SIZE
    next_cursor = found[settings.CONSOLE_PAGE_SIZE - 1][1] if more else None
    stuck = counts.pop(STUCK, 0)
    types = sorted({t for t, _ in tally} | ({wanted.wf_type} if wanted.wf_type else set()))
    matched = stuck if wanted.stuck else sum(
        n for status, n in counts.items() if status in wanted.statuses or not wanted.statuses)
    return console.render(request, "runs.html", query=query, rows=rows, counts=counts, loaded=loaded,
                          total=sum(counts.values()), statuses=STATUS_ORDER, types=types, now=now,
                          matched=matched, stuck=stuck,
                          next=query.params(after=cursor_text(next_cursor)) if next_cursor else None,
                          first=query.params(after="") if query.after else None)


class RunView(msgspec.Struct):
    """What the Run page shows, from the run's info and history."""

    info: RunInfo
    events: list[HistoryEvent]
    input: Any = None
    has_input: bool = False
    result: Any = None
    has_result: bool = False
    error: Any = None  # ErrorDetails of run.failed
    ended_by: str = ""  # the terminal event's kind
    reason: str = ""
    children: list[tuple[str, str, str]] = msgspec.field(default_factory=list)  # (wf_id, run_id, type)


def run_view(info: RunInfo, events: list[HistoryEvent]) -> RunView:
    view = RunView(info, events)
    for e in events:
        if e.kind == H.run_started:
            view.input, view.has_input = e.msg.input, True
        elif e.kind == H.run_completed:
            view.result, view.has_result = e.msg.result, True
        elif e.kind == H.run_failed:
            view.error = e.msg.error
        elif e.kind == H.child_started:
            view.children.append((e.msg.wf_id, e.msg.run_id, e.msg.wf_type))
        if e.is_terminal:
            view.ended_by = str(e.kind)
            view.reason = getattr(e.msg, "reason", "") or ""
    return view


async def run_page(request: web.Request) -> web.Response:
    console = of(request)
    wf_id, run_id = request.query.get("id", ""), request.query.get("run", "")
    if not wf_id:
        raise web.HTTPFound(f"{request['prefix']}/")
    nc = console.engine.connection.nc
    if not run_id:
        latest = await reads.latest_run(nc, wf_id) if names_ok(wf_id) else None
        if latest is None:
            return _missing(request, f"workflow {wf_id!r} has no run")
        raise web.HTTPFound(f"{request['prefix']}/run?{urlencode({'id': wf_id, 'run': latest.id})}")
    info = await reads.run_info(nc, wf_id, run_id) if names_ok(wf_id, run_id) else None
    if info is None:
        return _missing(request, f"workflow {wf_id!r} has no run {run_id!r}")
    events = await console.histories.read(nc, wf_id, run_id)
    now = utcnow()
    stored = await reads.store(nc, wf_id, run_id)
    notice = DONE.get(request.query.get("done", ""), "")
    entry = await reads.registered(nc, info.wf_type) if not info.is_terminal else None
    names = [str(e.get("name", "")) for e in entry.events if isinstance(e, dict)] if entry else []
    return console.render(request, "run.html", view=run_view(info, events), store=stored, now=now,
                          line=timeline.build(events, now), notice=notice, events=names)


async def run_live(request: web.Request) -> web.Response:
    """The parts of the Run page that change while it moves: status, timeline, the history rows after
    ``after`` (a stream sequence), as HTML rendered (and escaped) here."""
    console = of(request)
    wf_id, run_id = request.query.get("id", ""), request.query.get("run", "")
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        after = 0
    nc = console.engine.connection.nc
    info = await reads.run_info(nc, wf_id, run_id) if names_ok(wf_id, run_id) else None
    if info is None:
        return web.json_response({"gone": True}, status=404)
    events = await console.histories.read(nc, wf_id, run_id)
    now = utcnow()
    view = run_view(info, events)
    fresh = [e for e in events if e.seq > after]
    part = console.templates.get_template("run_parts.html").module
    return web.json_response({
        "status": str(info.status), "ended": info.is_terminal, "last": events[-1].seq if events else after,
        "rows": str(part.history_rows(fresh)),  # type: ignore[attr-defined]
        "timeline": str(part.timeline_svg(timeline.build(events, now), now)),  # type: ignore[attr-defined]
        "summary": str(part.summary(view, now, request["prefix"])),  # type: ignore[attr-defined]
    })


async def workers_page(request: web.Request) -> web.Response:
    console = of(request)
    nc = console.engine.connection.nc
    entries: list[RegistryEntry] = await reads.registry(nc)
    now = utcnow()
    tally = console.engine.runs.tally(now, RunFilter())
    span, rates = console.rates.per_minute()
    seen = sorted(console.registrations.workers.values(), key=lambda w: w.since, reverse=True)
    types = []
    for entry in entries:
        serving = [w for w in seen if entry.type in w.types]
        if entry.worker_id and all(w.worker_id != entry.worker_id for w in serving):
            serving.append(reads.SeenWorker(entry.worker_id, [entry.type], entry.registered_at or now))
        types.append({
            "entry": entry, "workers": serving, "steps": await reads.steps_of(console.engine.connection.js,
                                                                               entry.type),
            "running": tally.get((entry.type, "running"), 0),
            "waiting": tally.get((entry.type, "pending"), 0) + tally.get((entry.type, "scheduled"), 0),
            "started": rates.get(("grctl_engine_runs_started_total", entry.type), 0.0),
            "ended": {status: rates.get(("grctl_engine_runs_ended_total", entry.type, status), 0.0)
                      for status in ("completed", "failed", "cancelled", "terminated", "timed_out")},
            "steps_ended": {outcome: rates.get(("grctl_engine_steps_ended_total", entry.type, outcome), 0.0)
                            for outcome in ("completed", "failed", "cancelled", "timed_out")},
        })
    directives = sorted(((key[1], key[2], value) for key, value in rates.items()
                         if key[0] == "grctl_engine_directives_total" and value > 0), key=lambda d: -d[2])
    return console.render(request, "workers.html", types=types, span=span, directives=directives, now=now)


def names_ok(*names: str) -> bool:
    """Whether every id can be a subject token (a ``*`` or ``>`` in one would read other runs)."""
    return all(name and subjects.invalid_token_reason(name) is None for name in names)


def _missing(request: web.Request, message: str) -> web.Response:
    return of(request).render(request, "message.html", status=404, title="Not found", message=message)


async def not_found(request: web.Request) -> web.Response:
    return _missing(request, "there is no such page")
