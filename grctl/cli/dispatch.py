"""The ``grctl`` command line: a dispatcher with one function per subcommand.

``grctl engine`` runs the orchestration engine (here); the client subcommands (start, run, describe,
history, send, cancel, terminate) live in ``grctl.cli.commands``, ``list`` in
``grctl.cli.list_command`` and the public CLI's shape (``grctl workflow start --type T``...) in
``grctl.cli.public_shape``. Every subcommand takes
``-c/--config`` (grctl.yaml: its ``nats`` section, and for the engine its ``engine`` section; see
``grctl.cli.config``) and ``-s/--server/--server-url`` (a URL, or ``host:port`` as the public CLI takes
it; repeatable or comma-separated; default: the file, else ``$GRCTL_NATS_SERVERS``, else
``nats://localhost:4225``), also accepted before the subcommand, as is ``-l/--log-level``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from datetime import timedelta
from importlib import metadata

from grctl import eventloop, settings
from grctl.cli import config as cli_config
from grctl.cli.cluster import add_cluster_parsers
from grctl.cli.commands import EXIT_STATUS_HELP, EXIT_USAGE, CliError, add_client_parsers, run_client_command
from grctl.cli.describe_retry import add_runs_parsers
from grctl.cli.list_command import add_list_parser
from grctl.cli.public_shape import add_workflow_parsers
from grctl.cli.schedule_command import add_schedule_parser
from grctl.daemon.logs import configure_logging
from grctl.daemon.model import DaemonConfig, LoggingConfig
from grctl.daemon.schema import parse_retention, parse_size
from grctl.nats.jetstream import JetStreamError
from grctl.nats.retry import is_transient
from grctl.nats.stream_settings import StreamSettingsError
from grctl.ops.listen import parse_listen

SERVER_HELP = ("NATS server: a URL or host:port (repeatable or comma-separated; default: the --config "
               "file, else $GRCTL_NATS_SERVERS, else nats://localhost:4225)")
LEVELS = ["debug", "info", "warning", "error"]
CONFIG_HELP = ("grctl.yaml to take the NATS connection from (servers, credentials, TLS) and, for the "
               "engine, the engine section; without it the GRCTL_NATS_* environment variables are read")


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


def _listen(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _config(args: argparse.Namespace) -> DaemonConfig:
    """The configuration (file or environment) with repeated/comma-separated ``-s`` servers applied."""
    servers = [_server_url(s.strip()) for v in args.server or [] for s in v.split(",") if s.strip()]
    return cli_config.load(args.config, servers or None)


def _positive_seconds(text: str) -> timedelta:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return timedelta(seconds=value)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds_value(text: str) -> float:
    return _positive_seconds(text).total_seconds()


def _retention(text: str) -> timedelta | None:
    try:
        seconds = parse_retention(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return timedelta(seconds=seconds) if seconds else None


# --- engine ------------------------------------------------------------------------------------------


def add_engine_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("engine", help="run the orchestration engine", parents=parents,
                       description="Run the grctl engine against a NATS server with JetStream "
                                   "(2.12 or newer).")
    p.add_argument("-l", "--log-level", type=_level, default=argparse.SUPPRESS, metavar="LEVEL",
                   help="debug, info, warn or error (default: $GRCTL_LOGGING_LEVEL, $LOG_LEVEL, else info)")
    p.add_argument("--log-format", choices=["text", "json"], type=str.lower,
                   default=os.environ.get("GRCTL_LOG_FORMAT", "text").lower() or "text",
                   help="log lines as text or as one JSON object per line (default text)")
    p.add_argument("--http", type=_listen, metavar="HOST:PORT",
                   help="serve the web console (at /), /metrics (Prometheus), /healthz and /readyz on "
                        "HOST:PORT (default: engine.http.listen, else off)")
    p.add_argument("--memory", action="store_true", help="create the stream in memory instead of on disk")
    p.add_argument("--step-timeout", type=_positive_seconds, metavar="SECONDS",
                   help=f"default step timeout (default: engine.step_timeout, else "
                        f"{settings.ENGINE_STEP_TIMEOUT:g})")
    p.add_argument("--wait-timeout", type=_positive_seconds, metavar="SECONDS",
                   help=f"default wait timeout (default: engine.wait_timeout, else "
                        f"{settings.ENGINE_WAIT_TIMEOUT:g})")
    p.add_argument("--retention", type=_retention, default=argparse.SUPPRESS, metavar="DURATION",
                   help='how long finished runs are kept, e.g. "7d", "12h", "30m", or "forever" '
                        "(default: engine.retention, else 7d)")
    stream = p.add_argument_group("the grctl_state stream (applied to an existing stream at every start; "
                                  "defaults from the --config file's engine section)")
    stream.add_argument("--replicas", type=int, metavar="N",
                        help="copies of the stream on as many NATS servers: 1 on a single node (the "
                             "default), 3 on a cluster")
    stream.add_argument("--max-bytes", type=_size, metavar="SIZE",
                        help="size limit, e.g. 50GiB (default none; when reached the OLDEST messages "
                             "are deleted, so keep it far above the expected size)")
    stream.add_argument("--max-msg-size", type=_size, metavar="SIZE",
                        help="largest message stored, e.g. 1MiB (default: the server's max_payload)")
    stream.add_argument("--duplicate-window", type=_seconds_value, metavar="SECONDS",
                        help=f"how long a repeated message id is recognised (default "
                             f"{settings.DUPLICATE_WINDOW:g}, at least {settings.MIN_DUPLICATE_WINDOW:g})")
    p.set_defaults(func=cmd_engine)


def cmd_engine(args: argparse.Namespace) -> int:
    from grctl.console.serve import console_for
    from grctl.engine import run_engine

    level = getattr(args, "log_level", None) or args.global_log_level or _level(
        os.environ.get("GRCTL_LOGGING_LEVEL") or os.environ.get("LOG_LEVEL") or "info")
    configure_logging(LoggingConfig(level=level, format=args.log_format), role="engine")
    cfg = _config(args)
    engine = cfg.engine
    flags = {"replicas": args.replicas, "max_bytes": args.max_bytes, "max_msg_size": args.max_msg_size,
             "duplicate_window": args.duplicate_window}
    try:
        stream = dataclasses.replace(engine.stream_settings(),
                                     **{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:
        raise CliError(EXIT_USAGE, str(exc)) from None
    step_timeout = args.step_timeout or timedelta(seconds=engine.step_timeout or settings.ENGINE_STEP_TIMEOUT)
    wait_timeout = args.wait_timeout or timedelta(seconds=engine.wait_timeout or settings.ENGINE_WAIT_TIMEOUT)
    if hasattr(args, "retention"):
        retention = args.retention
    else:  # the file's (7d by default); 0 there means for ever
        retention = timedelta(seconds=engine.retention) if engine.retention else None
    options = {**cfg.nats.connect_options(), "name": "grctl-engine"}
    listen = args.http or engine.http.listen
    if listen:
        try:
            engine.http.console.check(parse_listen(listen))
        except ValueError as exc:
            raise CliError(EXIT_USAGE, str(exc)) from None
    try:
        eventloop.run(run_engine(memory=args.memory, step_timeout=step_timeout, wait_timeout=wait_timeout,
                               retention=retention, stream=stream, connect_options=options,
                               http_listen=listen, console=console_for(engine.http.console)))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A lost connection or a refused stream setting is explained by its message; anything else is a bug.
        expected = is_transient(exc) or isinstance(exc, ConnectionError | JetStreamError
                                                   | StreamSettingsError)
        logging.getLogger("grctl.engine").error("engine failed: %s", exc, exc_info=not expected)
        return 1
    return 0


# --- dispatcher --------------------------------------------------------------------------------------


def _client_command(args: argparse.Namespace) -> int:
    nats = _config(args).nats
    return run_client_command(args, nats.servers, nats.auth_options())


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
    parser.add_argument("-c", "--config", metavar="FILE", dest="top_config", help=CONFIG_HELP)
    parser.add_argument("-l", "--log-level", type=_level, dest="top_log_level", metavar="LEVEL",
                        help="debug, info, warn or error (default: errors only; the engine: info)")
    # The subcommands' own -s/-c: absent from their namespace unless given, so a top-level one survives.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-s", "--server", "--server-url", action="append", metavar="URL",
                        default=argparse.SUPPRESS, help=SERVER_HELP)
    common.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("-v", "--verbose", action="store_true", help="log what the client does (stderr)")
    client.add_argument("-l", "--log-level", type=_level, dest="global_log_level", metavar="LEVEL",
                        default=argparse.SUPPRESS, help="debug, info, warn or error (default: errors only)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_client_parsers(sub, [common, client])
    add_list_parser(sub, [common, client])
    add_runs_parsers(sub, [common, client])
    add_workflow_parsers(sub, [common, client])
    add_schedule_parser(sub, [common, client])
    add_engine_parser(sub, [common])
    add_cluster_parsers(sub, [common, client])
    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    parser.set_defaults(func=_client_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "server"):
        args.server = args.top_server
    if not hasattr(args, "config"):
        args.config = args.top_config
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
