"""The console's settings (``engine.http.console`` in the configuration file) and the start-time check
that keeps an unprotected console off the network."""

from __future__ import annotations

import ipaddress
import socket

import msgspec

from grctl.ops.listen import Endpoint


class ConsoleRefused(ValueError):
    """The console would be reachable from other hosts without credentials."""


class ConsoleSettings(msgspec.Struct, frozen=True, kw_only=True):
    """``admin_password``: may read and act; ``viewer_password``: may only read. Each is accepted as a
    bearer token or as the password of HTTP basic authentication (user ``admin`` or ``viewer``). With
    neither set, everyone who reaches the listener is an admin, which is allowed on loopback only.
    ``path_prefix``: where a reverse proxy publishes the console (``/grctl``), when it strips the prefix
    and does not say so in ``X-Forwarded-Prefix``."""

    enabled: bool = True
    admin_password: str | None = None
    viewer_password: str | None = None
    path_prefix: str = ""

    @property
    def protected(self) -> bool:
        return bool(self.admin_password or self.viewer_password)

    def check(self, endpoint: Endpoint) -> None:
        """Raise ``ConsoleRefused`` for a non-loopback listener without credentials."""
        if self.enabled and not self.protected and not is_loopback(endpoint.host):
            raise ConsoleRefused(
                f"the console would be open to the network on {endpoint} without credentials: set "
                "engine.http.console.admin_password (or _file), listen on 127.0.0.1, or set "
                "engine.http.console.enabled: false")


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (``localhost`` is resolved)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback
                               for info in found)
