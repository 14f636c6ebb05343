"""grctl schedule: the schedules declared in grctld's files, as the engine keeps them.

    grctl schedule list [--json]          each schedule: when, next fire, last run and its status, paused
    grctl schedule trigger ID             run it now (its overlap policy applies)
    grctl schedule pause ID [--note T]    stop firing it until resumed (kept across reloads, restarts)
    grctl schedule resume ID              fire again from the next tick
    grctl schedule backfill ID FROM TO    run every tick from FROM to TO that has no run yet
    grctl schedule withdraw HOST:FILE     withdraw a retired host's declarations (declared_by)
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from grctl.cli import format as fmt
from grctl.cli.commands import EXIT_OK, add_command
from grctl.cli.list_command import since
from grctl.client.client import Client
from grctl.models.schedule import RunOutcome, ScheduleView


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _when(view: ScheduleView) -> str:
    spec = view.state.spec
    if spec is None:
        return "-"
    return f"{spec.cron} ({spec.timezone})" if spec.cron else f"every {spec.every:g}s"


def as_json(view: ScheduleView) -> dict[str, Any]:
    s = view.state
    spec = s.spec
    return {
        "id": s.id, "workflow": spec.workflow if spec else None, "cron": spec.cron if spec else None,
        "every": spec.every if spec else None, "timezone": spec.timezone if spec else None,
        "overlap": str(spec.overlap) if spec else None, "paused": s.paused, "pause_note": s.pause_note,
        "next_fires": [t.isoformat() for t in view.next_fires],
        "last_tick": s.last_tick.isoformat() if s.last_tick else None,
        "last_run": {"wf_id": s.last_wf_id, "status": view.last_status} if s.last_wf_id else None,
        "buffered": s.buffered.isoformat() if s.buffered else None,
        "fired": s.fired, "skipped": s.skipped, "missed": s.missed,
        "declared_by": s.declared_by, "conflict": s.conflict or None,
    }


def table(views: list[ScheduleView]) -> list[str]:
    header = ("ID", "WORKFLOW", "WHEN", "NEXT FIRE (UTC)", "LAST RUN", "STATUS", "PAUSED", "FIRED/SKIP/MISS")
    rows = [(v.state.id, v.state.spec.workflow if v.state.spec else "-", _when(v),
             _time(v.next_fires[0] if v.next_fires else None), v.state.last_wf_id or "-",
             v.last_status or "-", "yes" if v.state.paused else "no",
             f"{v.state.fired}/{v.state.skipped}/{v.state.missed}") for v in views]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return lines + [f"conflict: {v.state.conflict}" for v in views if v.state.conflict]


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    views = await client.list_schedules()
    if args.json:
        print(fmt.to_json([as_json(v) for v in views], indent=2))
    elif views:
        print("\n".join(table(views)))
    else:
        print("no schedules (declare them under schedules: in grctl.yaml)", file=sys.stderr)
    return EXIT_OK


def _outcome(outcome: RunOutcome) -> str:
    detail = f" ({outcome.detail})" if outcome.detail else ""
    return f"{_time(outcome.tick)}  {outcome.action}  {outcome.wf_id}{detail}"


async def cmd_trigger(client: Client, args: argparse.Namespace) -> int:
    print(_outcome(await client.trigger_schedule(args.id)))
    return EXIT_OK


async def cmd_pause(client: Client, args: argparse.Namespace) -> int:
    await client.pause_schedule(args.id, args.note or "")
    print(f"schedule {args.id} paused")
    return EXIT_OK


async def cmd_resume(client: Client, args: argparse.Namespace) -> int:
    state = await client.resume_schedule(args.id)
    print(f"schedule {args.id} resumed; next tick {_time(state.next_tick)} UTC")
    return EXIT_OK


def _moment(value: datetime | timedelta) -> datetime:
    return datetime.now(UTC) - value if isinstance(value, timedelta) else value


async def cmd_backfill(client: Client, args: argparse.Namespace) -> int:
    outcomes = await client.backfill_schedule(args.id, _moment(args.start), _moment(args.end))
    for outcome in outcomes:
        print(_outcome(outcome))
    if not outcomes:
        print("no tick in that range", file=sys.stderr)
    return EXIT_OK


async def cmd_withdraw(client: Client, args: argparse.Namespace) -> int:
    result = await client.withdraw_schedules(args.declarer)
    for schedule_id in result.removed:
        print(f"schedule {schedule_id} removed (no other host declares it)")
    for schedule_id in result.elsewhere:
        print(f"schedule {schedule_id} stays: other hosts declare it")
    return EXIT_OK


def _nothing(args: argparse.Namespace) -> None:
    pass


def add_schedule_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schedule", help="list and operate the schedules of grctl.yaml",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    listing = add_command(actions, parents, "list", "list the schedules in force", cmd_list, _nothing)
    listing.add_argument("--json", action="store_true", help="print a JSON array, one object per schedule")
    for name, help, command in (("trigger", "start the schedule's workflow now", cmd_trigger),
                                ("pause", "stop firing the schedule until resumed", cmd_pause),
                                ("resume", "fire the schedule again from its next tick", cmd_resume),
                                ("backfill", "run every tick of a past range that has no run yet",
                                 cmd_backfill)):
        action = add_command(actions, parents, name, help, command, _nothing)
        action.add_argument("id", metavar="ID", help="the schedule id")
        if name == "pause":
            action.add_argument("--note", metavar="TEXT", help="why, shown by schedule list")
        if name == "backfill":
            for bound in ("start", "end"):
                action.add_argument(bound, type=since, metavar={"start": "FROM", "end": "TO"}[bound],
                                    help="a time (ISO 8601; UTC without an offset) or a duration back "
                                         "from now (2d, 1h)")
    withdraw = add_command(actions, parents, "withdraw", "withdraw the schedules a retired host declared",
                           cmd_withdraw, _nothing)
    withdraw.add_argument("declarer", metavar="HOST:FILE",
                          help="the declarer as schedule list --json names it in declared_by")
