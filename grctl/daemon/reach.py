"""``grctld --check-config --check-connection``: connect as the file says and check that the NATS user
has the permissions of this host's role (the engine, workers of the file's workflow types, or both)."""

from __future__ import annotations

import asyncio

from grctl import settings
from grctl.daemon.model import DaemonConfig
from grctl.nats import roles
from grctl.nats.connection import Connection
from grctl.nats.probe import missing, user_info
from grctl.nats.requests import PermissionDeniedError


def needs(cfg: DaemonConfig, types: list[str]) -> list[roles.Permissions]:
    wanted = [roles.engine()] if cfg.engine.embedded else []
    return wanted + ([roles.worker(types)] if types else [])


async def _connect(cfg: DaemonConfig) -> Connection | str:
    """A connection, or why there is none (the server's own words when it refused)."""
    errors: list[Exception] = []

    async def remember(exc: Exception) -> None:
        errors.append(exc)

    options = {**cfg.nats.connect_options(), "max_reconnect_attempts": 0, "allow_reconnect": False,
               "error_cb": remember}
    try:
        return await asyncio.wait_for(Connection.connect(**options), settings.CHECK_CONNECTION_WITHIN)
    except Exception as exc:
        cause = errors[-1] if errors else exc
        return f"cannot connect to NATS {', '.join(cfg.nats.servers)}: {cause or type(cause).__name__}"


async def _check(cfg: DaemonConfig, types: list[str]) -> list[str]:
    """Problems found (none: the user may do what this host does)."""
    connection = await _connect(cfg)
    if isinstance(connection, str):
        return [connection]
    try:
        info = await user_info(connection.nc)
    except PermissionDeniedError as exc:
        return [f"cannot ask NATS for this user's permissions: {exc}"]
    except Exception as exc:
        return [f"cannot ask NATS for this user's permissions ({type(exc).__name__}: {exc}); "
                "nats-server 2.10 or newer answers it"]
    finally:
        await connection.close()
    lacking = missing(info, needs(cfg, types))
    return [f"NATS user {info.user!r} (account {info.account}) may not {what}" for what in lacking]


def check_connection(cfg: DaemonConfig, types: list[str]) -> tuple[list[str], str]:
    """(problems, a line about what was checked)."""
    if cfg.nats.embedded is not None:
        return [], "connection not checked: grctld starts its embedded NATS server itself"
    problems = asyncio.run(_check(cfg, types))
    role = " and ".join(p.comment for p in needs(cfg, types))
    return problems, f"NATS: connected; the user has what {role} needs"
