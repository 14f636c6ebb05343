"""``grctl list``: stored runs, newest first, filtered by status, type and age — the first command of a
runbook (``grctl list --status failed --since 1h``). A table, or ``--json`` (a JSON array of run infos)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

import msgspec

from grctl import settings
from grctl.cli import format as fmt
from grctl.cli.commands import EXIT_OK, add_command
from grctl.cli.start_time import iso_time
from grctl.client.client import Client
from grctl.daemon.schema import parse_duration
from grctl.models.common import RunInfo, RunStatus

STATUSES = [str(s) for s in RunStatus]


def statuses(text: str) -> list[str]:
    """``failed`` or ``failed,timed_out`` (also ``timeout`` and ``canceled``, as people type them)."""
    aliases = {"timeout": "timed_out", "canceled": "cancelled"}
    found = []
    for part in text.split(","):
        name = aliases.get(part.strip().lower(), part.strip().lower())
        if name not in STATUSES:
            raise argparse.ArgumentTypeError(f"unknown status {part!r} (one of {', '.join(STATUSES)})")
        found.append(name)
    return found


def since(text: str) -> datetime | timedelta:
    """A duration back from now ("1h", "30m", "2d") or a time (ISO 8601; UTC when no offset is given)."""
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    when = iso_time(text)
    if when is None:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 1h, 30m, 2d) nor a time (ISO 8601): {text!r}")
    return when


def limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= settings.MAX_LIST:
        raise argparse.ArgumentTypeError(f"must be between 1 and {settings.MAX_LIST}")
    return value


def add_list_arguments(p: argparse.ArgumentParser, type_flag: str = "--type") -> None:
    p.add_argument("--status", type=statuses, action="append", metavar="STATUS",
                   help=f"only runs in this status (repeatable or comma-separated: {', '.join(STATUSES)})")
    p.add_argument(type_flag, dest="type", metavar="TYPE", help="only runs of this workflow type")
    p.add_argument("--since", type=since, metavar="DURATION|TIME",
                   help="only runs created since then: a duration back from now (1h, 30m, 2d) or a time")
    p.add_argument("--limit", type=limit, default=settings.LIST_LIMIT, metavar="N",
                   help=f"at most N runs (default {settings.LIST_LIMIT}, at most {settings.MAX_LIST})")
    p.add_argument("--json", action="store_true", help="print a JSON array of run infos")


def prepare_list(args: argparse.Namespace) -> None:
    args.statuses = sorted({s for group in args.status or [] for s in group})


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(info: RunInfo) -> str:
    start = info.started_at or info.created_at
    if info.completed_at is None or start is None:
        return "-"
    seconds = max(0.0, (info.completed_at - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.3g}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m" if seconds >= 3600 else \
        f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def table(runs: list[RunInfo]) -> list[str]:
    header = ("WORKFLOW ID", "TYPE", "STATUS", "CREATED (UTC)", "TOOK", "RUN ID")
    rows = [(r.wf_id, r.wf_type, f"{r.status}, stuck" if r.stuck else str(r.status), _time(r.created_at),
             _duration(r), r.id) for r in runs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    runs = await client.list_runs(status=args.statuses, type=args.type, since=args.since, limit=args.limit,
                                  stuck=args.stuck)
    if args.json:
        print(fmt.to_json([msgspec.to_builtins(r) for r in runs], indent=2))
    elif runs:
        print("\n".join(table(runs)))
    else:
        print("no runs match", file=sys.stderr)
    return EXIT_OK


def add_list_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = add_command(sub, parents, "list", "list stored runs, newest first", cmd_list, prepare_list)
    add_list_arguments(p)
    p.add_argument("--stuck", action="store_true", help="only runs held by a mismatch between the code and "
                   "the run (see grctl describe ID for why)")
