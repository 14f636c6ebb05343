"""Where the ``grctl`` command (the engine and the client commands) gets its NATS connection and engine
settings, so it connects exactly as grctld does.

``-c FILE`` reads grctl.yaml through grctld's own loader: the same ``nats`` section (servers,
user/password, token, nkey, .creds, TLS and mutual TLS, secrets from files or $CREDENTIALS_DIRECTORY),
the same ``engine`` section, the same environment overrides and checks. Without ``-c`` the environment
alone is read (``GRCTL_NATS_SERVERS``, ``GRCTL_NATS_USER``/``PASSWORD``, ``GRCTL_NATS_TOKEN``,
``GRCTL_NATS_CREDENTIALS_FILE``, ``GRCTL_NATS_NKEY_SEED_FILE``, ``GRCTL_NATS_TLS_CA_FILE``/``CERT_FILE``/
``KEY_FILE``). ``-s`` replaces the servers in both cases.
"""

from __future__ import annotations

import msgspec

from grctl.cli.commands import EXIT_USAGE, CliError
from grctl.daemon.config import Overrides, load_config, load_environment
from grctl.daemon.errors import ConfigError
from grctl.daemon.model import DaemonConfig


def load(path: str | None, servers: list[str] | None) -> DaemonConfig:
    """The resolved configuration; a usage error (exit 2) naming every problem when it is unusable."""
    overrides = Overrides(nats_servers=tuple(servers) if servers else None)
    try:
        cfg = load_config(path, overrides=overrides, daemon=False) if path else load_environment(
            overrides=overrides)
    except ConfigError as exc:
        raise CliError(EXIT_USAGE, "the configuration cannot be used:\n  " +
                       "\n  ".join(str(p) for p in exc.problems)) from None
    if servers and cfg.nats.embedded is not None:  # grctld's workers use the embedded server; -s wins here
        cfg = msgspec.structs.replace(cfg, nats=msgspec.structs.replace(cfg.nats, servers=list(servers)))
    return cfg
