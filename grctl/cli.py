"""The ``grctl`` command line: a dispatcher with one function per subcommand.

``grctl engine`` runs the orchestration engine (here); the client subcommands (start, run, describe,
history, send, cancel, terminate) live in ``grctl.cli_client``, ``list`` in ``grctl.cli_list`` and the
public CLI's shape (``grctl workflow start --type T``...) in ``grctl.cli_public``. Every subcommand takes
``-s/--server/--server-url`` (a URL, or ``host:port`` as the public CLI takes it; repeatable or
comma-separated; default ``$GRCTL_NATS_SERVERS``, else ``nats://localhost:4225``), also accepted before
the subcommand, as is ``-l/--log-level``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import timedelta
from importlib import metadata

from grctl.cli_client import EXIT_STATUS_HELP, EXIT_USAGE, CliError, add_client_parsers, run_client_command
from grctl.cli_list import add_list_parser
from grctl.cli_public import add_workflow_parsers
from grctl.daemon.logs import configure_logging
from grctl.daemon.model import LoggingConfig
from grctl.daemon.schema import parse_retention
from grctl.engine.snapshot import DEFAULT_RETENTION
from grctl.nats.connection import servers_from_env
from grctl.ops.listen import parse_listen

SERVER_HELP = ("NATS server: a URL or host:port (repeatable or comma-separated; default: "
               "$GRCTL_NATS_SERVERS, else nats://localhost:4225)")
LEVELS = ["debug", "info", "warning", "error"]


def version() -> str:
    try:
        return metadata.version("grctl")
    except metadata.PackageNotFoundError:
        return "unknown"


def _level(text: str) -> str:
    level = text.strip().lower()
    level = "warning" if level == "warn" else level
    if level not in LEVELS:
        raise argparse.ArgumentTypeError(f"unknown level {text!r} (one of debug, info, warn, error)")
    return level


def _server_url(text: str) -> str:
    """``host:port`` (the public CLI's form) becomes ``nats://host:port``; URLs are kept."""
    return text if "://" in text else f"nats://{text}"


def _servers(values: list[str] | None) -> list[str]:
    """Servers from repeated/comma-separated ``-s`` options, else from the environment."""
    if not values:
        try:
            return servers_from_env()
        except ValueError as exc:
            raise CliError(EXIT_USAGE, "the NATS servers in the environment (GRCTL_NATS_SERVERS) are "
                                       f"neither a comma-separated nor a JSON list of URLs: {exc}") from None
    return [_server_url(s.strip()) for v in values for s in v.split(",") if s.strip()]


def _positive_seconds(text: str) -> timedelta:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return timedelta(seconds=value)


def _retention(text: str) -> timedelta | None:
    try:
        seconds = parse_retention(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return timedelta(seconds=seconds) if seconds else None


def _listen(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# --- engine ------------------------------------------------------------------------------------------


def add_engine_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("engine", help="run the orchestration engine", parents=parents,
                       description="Run the grctl engine against a NATS server with JetStream "
                                   "(2.12 or newer).")
    p.add_argument("-l", "--log-level", type=_level, default=argparse.SUPPRESS, metavar="LEVEL",
                   help="debug, info, warn or error (default: $GRCTL_LOGGING_LEVEL, $LOG_LEVEL, else info)")
    p.add_argument("--memory", action="store_true", help="create the stream in memory instead of on disk")
    p.add_argument("--step-timeout", type=_positive_seconds, default=timedelta(minutes=5), metavar="SECONDS",
                   help="default step timeout (default 300)")
    p.add_argument("--wait-timeout", type=_positive_seconds, default=timedelta(hours=1), metavar="SECONDS",
                   help="default wait timeout (default 3600)")
    p.add_argument("--retention", type=_retention, default=DEFAULT_RETENTION, metavar="DURATION",
                   help='how long finished runs are kept, e.g. "7d", "12h", "30m", or "forever" '
                        "(default 7d)")
    p.add_argument("--http", type=_listen, metavar="HOST:PORT",
                   help="serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT (default: off)")
    p.add_argument("--log-format", choices=["text", "json"], type=str.lower,
                   default=os.environ.get("GRCTL_LOG_FORMAT", "text").lower() or "text",
                   help="log lines as text or as one JSON object per line (default text)")
    p.set_defaults(func=cmd_engine)


def cmd_engine(args: argparse.Namespace) -> int:
    from grctl.engine import run_engine

    level = getattr(args, "log_level", None) or args.global_log_level or _level(
        os.environ.get("GRCTL_LOGGING_LEVEL") or os.environ.get("LOG_LEVEL") or "info")
    configure_logging(LoggingConfig(level=level, format=args.log_format), role="engine")
    servers = _servers(args.server)
    try:
        asyncio.run(run_engine(servers, memory=args.memory, step_timeout=args.step_timeout,
                               wait_timeout=args.wait_timeout, retention=args.retention,
                               http_listen=args.http))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("grctl.engine").error("engine failed: %s", exc)
        return 1
    return 0


# --- dispatcher --------------------------------------------------------------------------------------


def _client_command(args: argparse.Namespace) -> int:
    return run_client_command(args, _servers(args.server))


def cmd_version(args: argparse.Namespace) -> int:
    print(f"grctl {version()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grctl", description="grctl: durable workflows on NATS JetStream",
                                     epilog=EXIT_STATUS_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"grctl {version()}")
    parser.add_argument("-s", "--server", "--server-url", action="append", metavar="URL", dest="top_server",
                        help=SERVER_HELP)
    parser.add_argument("-l", "--log-level", type=_level, dest="top_log_level", metavar="LEVEL",
                        help="debug, info, warn or error (default: errors only; the engine: info)")
    # The subcommands' own -s: absent from their namespace unless given, so a top-level -s survives.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-s", "--server", "--server-url", action="append", metavar="URL",
                        default=argparse.SUPPRESS, help=SERVER_HELP)
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("-v", "--verbose", action="store_true", help="log what the client does (stderr)")
    client.add_argument("-l", "--log-level", type=_level, dest="global_log_level", metavar="LEVEL",
                        default=argparse.SUPPRESS, help="debug, info, warn or error (default: errors only)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_client_parsers(sub, [common, client])
    add_list_parser(sub, [common, client])
    add_workflow_parsers(sub, [common, client])
    add_engine_parser(sub, [common])
    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    parser.set_defaults(func=_client_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "server"):
        args.server = args.top_server
    if not hasattr(args, "global_log_level"):
        args.global_log_level = args.top_log_level
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"grctl: {exc.message}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:  # stdout closed early (`grctl history ID | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
