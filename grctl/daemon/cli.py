"""``grctld``: the config-file-driven worker daemon.

grctld -c /etc/grctl/grctl.yaml            run (supervisor + worker generations)
grctld -c FILE --check-config              validate, import the workflow modules and, when an engine
                                           answers, check that no live run needs a handler they lack
grctld -c FILE --check-config --check-connection   also connect and check the NATS user's permissions
grctld -c FILE --print-config              the resolved configuration, secrets masked
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from importlib import metadata
from typing import TYPE_CHECKING

import yaml

from grctl.daemon.config import DEFAULT_PATH, Overrides, load_config, workflow_problem
from grctl.daemon.errors import ConfigError
from grctl.daemon.logs import configure_logging
from grctl.daemon.model import DaemonConfig, mask_url
from grctl.daemon.schedule_config import next_fire_lines
from grctl.models.common import utcnow

if TYPE_CHECKING:
    from grctl.workflow import Workflow

LEVELS = ("debug", "info", "warning", "error", "critical")

log = logging.getLogger("grctl.daemon")


def version() -> str:
    try:
        return metadata.version("grctl")
    except metadata.PackageNotFoundError:
        return "unknown"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grctld",
        description="Run grctl workflow workers from a YAML configuration file, reloading it on change.",
        epilog="Environment overrides (between the file and the flags): GRCTL_NATS_SERVERS, GRCTL_NATS_USER, "
        "GRCTL_NATS_PASSWORD, GRCTL_NATS_TOKEN, GRCTL_NATS_CREDENTIALS_FILE, GRCTL_NATS_NKEY_SEED_FILE, "
        "GRCTL_NATS_NAME, GRCTL_LOG_LEVEL, GRCTL_LOG_FORMAT, GRCTL_SHUTDOWN_TIMEOUT, "
        "GRCTL_WORKER_PROCESSES, GRCTL_WORKER_MAX_CONCURRENT_STEPS.",
    )
    p.add_argument(
        "-c",
        "--config",
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"configuration file (default {DEFAULT_PATH})",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--check-config",
        action="store_true",
        help="validate the file, import the workflow modules and, when an engine can be reached, check that "
        "they keep every handler live runs need; then exit 0 (valid) or 1",
    )
    mode.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration (defaults, environment, flags; secrets masked)",
    )
    p.add_argument(
        "--check-connection",
        action="store_true",
        help="with --check-config: also connect to NATS as the file says and check that the user has the "
        "permissions of this host's role (engine, workers of its workflow types)",
    )
    p.add_argument("--log-level", choices=LEVELS, type=str.lower, help="override logging.level")
    p.add_argument(
        "--nats-server",
        action="append",
        metavar="URL",
        dest="nats_servers",
        help="override nats.servers (repeat for several)",
    )
    p.add_argument("--version", action="version", version=f"grctld {version()}")
    return p


def _report(exc: ConfigError) -> int:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    return 1


def check_imports(cfg: DaemonConfig, path: str) -> list[Workflow]:
    """Import the workflow modules here; returns the workflows. Raises ConfigError located at the
    failing ``workflows`` entry."""
    from grctl.daemon.workflows import WorkflowImportError, load_workflows

    try:
        return load_workflows(cfg.workflows, cfg.python_path)
    except WorkflowImportError as exc:
        raise ConfigError([workflow_problem(path, exc.index, exc.message)]) from None


def check_config(cfg: DaemonConfig, path: str, connection: bool = False) -> int:
    """``--check-config``: the file, the imports and, when an engine can be reached, whether the code
    lacks handlers that live runs need (what a reload would refuse); with ``connection``, also the NATS
    user's permissions (``--check-connection``)."""
    from grctl.daemon.strand import ALLOW_KEY, check_config_catalog

    workflows = check_imports(cfg, path)
    types = [wf.workflow_type for wf in workflows]
    roles = f"{len(types)} workflow type(s): {', '.join(types)}" if types else "engine only"
    stranding = asyncio.run(check_config_catalog(cfg.nats.connect_options(), workflows)) if types else ""
    # Reported, not failed: systemd runs --check-config before a start too, where grctld only warns.
    if stranding and not cfg.reload.allow_missing_handlers:
        print(f"{path}: warning: a reload to this code would be refused: it lacks {stranding}",
              file=sys.stderr)
    elif stranding:
        print(f"{path}: warning: the code lacks {stranding} ({ALLOW_KEY} is true: those runs would stay "
              "stuck)", file=sys.stderr)
    print(f"{path}: OK ({roles})")
    return _check_connection(cfg, types) if connection else 0


def _check_connection(cfg: DaemonConfig, types: list[str]) -> int:
    from grctl.daemon.reach import check_connection

    problems, checked = check_connection(cfg, types)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(checked)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides = Overrides(
        log_level=args.log_level, nats_servers=tuple(args.nats_servers) if args.nats_servers else None
    )
    try:
        cfg = load_config(args.config, overrides=overrides)
        if args.check_config:
            return check_config(cfg, args.config, args.check_connection)
    except ConfigError as exc:
        return _report(exc)
    if args.print_config:
        sys.stdout.write(f"# {args.config}, resolved (defaults < file < environment < flags)\n")
        sys.stdout.write(f"# workers connect to: {', '.join(mask_url(u) for u in cfg.nats.servers)}\n")
        sys.stdout.write(yaml.safe_dump(cfg.masked(), sort_keys=False, default_flow_style=False))
        for line in next_fire_lines(cfg.schedules, utcnow()):
            sys.stdout.write(f"{line}\n")
        return 0
    return run(cfg, args.config, overrides)


def run(cfg: DaemonConfig, path: str, overrides: Overrides) -> int:
    from grctl.daemon.supervisor import Supervisor

    configure_logging(cfg.logging, cfg.secrets(), role="supervisor")
    log.info("grctld %s starting (pid %d) with %s", version(), os.getpid(), os.path.abspath(path))
    try:
        return asyncio.run(Supervisor(cfg, path, overrides).run())
    except KeyboardInterrupt:  # only before the loop installed its handlers
        return 130


if __name__ == "__main__":
    sys.exit(main())
