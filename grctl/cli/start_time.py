"""``--at TIME`` and ``--in DURATION`` of ``grctl start`` and ``grctl run`` (a delayed start), and the
reading of a time on the command line."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from grctl.client.client import Client
from grctl.daemon.schema import parse_duration
from grctl.workflow.handle import WorkflowHandle


def iso_time(text: str) -> datetime | None:
    """ISO 8601 (UTC when it has no offset), or None when ``text`` is not such a time."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def at_time(text: str) -> datetime:
    when = iso_time(text)
    if when is None:
        raise argparse.ArgumentTypeError(f"not a time (ISO 8601, e.g. 2027-01-01T02:00:00+01:00): {text!r}")
    return when


def in_duration(text: str) -> timedelta:
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_when_arguments(p: argparse.ArgumentParser) -> None:
    when = p.add_mutually_exclusive_group()
    when.add_argument("--at", type=at_time, metavar="TIME",
                      help="create the run now, pending, and start it at TIME (ISO 8601; UTC without an "
                           "offset); it can be cancelled before")
    when.add_argument("--in", dest="start_in", type=in_duration, metavar="DURATION",
                      help="the same, DURATION from now (30s, 10m, 2h)")


async def start_run_of(client: Client, args: argparse.Namespace) -> WorkflowHandle:
    """The run ``grctl start``/``run`` asks for: now, or at ``--at``/``--in`` (absent from the public
    CLI's shape, which starts at once)."""
    return await client.start_workflow(args.type, args.id, args.input_value, timeout=args.timeout,
                                       start_at=getattr(args, "at", None),
                                       start_delay=getattr(args, "start_in", None))
