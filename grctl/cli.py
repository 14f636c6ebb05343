"""The ``grctl`` command line: a dispatcher with one function per subcommand.

Subcommands register themselves in ``build_parser`` through an ``add_*_parser`` function that sets
``func`` (the function running the subcommand, returning the exit status).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import timedelta

from grctl.nats.connection import servers_from_env

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _servers(values: list[str] | None) -> list[str]:
    """Servers from repeated/comma-separated ``-s`` options, else from the environment."""
    if not values:
        return servers_from_env()
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def _positive_seconds(text: str) -> timedelta:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return timedelta(seconds=value)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


# --- engine ------------------------------------------------------------------------------------------


def add_engine_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="run the orchestration engine",
                       description="Run the grctl engine against a NATS server with JetStream "
                                   "(2.12 or newer).")
    p.add_argument("-s", "--server", action="append", metavar="URL",
                   help="NATS server URL (repeatable or comma-separated; default: $GRCTL_NATS_SERVERS, "
                        "else nats://localhost:4225)")
    default_level = os.environ.get("GRCTL_LOGGING_LEVEL") or os.environ.get("LOG_LEVEL") or "info"
    p.add_argument("--log-level", default=default_level, choices=["debug", "info", "warning", "error"],
                   type=str.lower, help="log level (default info)")
    p.add_argument("--memory", action="store_true", help="create the stream in memory instead of on disk")
    p.add_argument("--step-timeout", type=_positive_seconds, default=timedelta(minutes=5), metavar="SECONDS",
                   help="default step timeout (default 300)")
    p.add_argument("--wait-timeout", type=_positive_seconds, default=timedelta(hours=1), metavar="SECONDS",
                   help="default wait timeout (default 3600)")
    p.set_defaults(func=cmd_engine)


def cmd_engine(args: argparse.Namespace) -> int:
    from grctl.engine import run_engine

    setup_logging(args.log_level)
    servers = _servers(args.server)
    try:
        asyncio.run(run_engine(servers, memory=args.memory, step_timeout=args.step_timeout,
                               wait_timeout=args.wait_timeout))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("grctl.engine").error("engine failed: %s", exc)
        return 1
    return 0


# --- dispatcher --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grctl", description="grctl: durable workflows on NATS JetStream")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_engine_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
