"""``--at TIME`` and ``--in DURATION`` of ``grctl start`` and ``grctl run``: a delayed start."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from grctl.daemon.schema import parse_duration


def at_time(text: str) -> datetime:
    """ISO 8601; UTC when it has no offset."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (ISO 8601, e.g. 2027-01-01T02:00:00+01:00): "
                                         f"{text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


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
