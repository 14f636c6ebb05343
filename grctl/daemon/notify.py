"""systemd notification (sd_notify) with the standard library only; silent without NOTIFY_SOCKET."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Variables that belong to the supervisor alone: children must not notify in its name.
NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Sends ``KEY=value`` datagrams to ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
    namespace). Errors are logged once and never raised: notification must not take the daemon down."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if raw.startswith("@"):
            self._address = b"\0" + raw[1:].encode()
        elif raw.startswith("/"):
            self._address = raw
        self._sock: socket.socket | None = None
        self._warned = False
        self.watchdog_interval = self._watchdog(env)

    @staticmethod
    def _watchdog(env: Mapping[str, str]) -> float | None:
        """Half of ``WATCHDOG_USEC`` in seconds, when the watchdog is on for this process."""
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) <= 0:
            return None
        if pid and pid != str(os.getpid()):
            return None
        return int(usec) / 2 / 1_000_000

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        if self._address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self._address)
            return True
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("systemd notification failed (%s); carrying on without it", exc)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *self._status(status))

    def reloading(self, status: str | None = None) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", *self._status(status))

    def stopping(self, status: str | None = None, extend: float | None = None) -> bool:
        """STOPPING=1; with ``extend`` (seconds), systemd waits that long from now before its stop
        timeout applies (EXTEND_TIMEOUT_USEC), so a long shutdown_timeout is honoured."""
        extension = [] if extend is None else [f"EXTEND_TIMEOUT_USEC={int(extend * 1_000_000)}"]
        return self.send("STOPPING=1", *extension, *self._status(status))

    def status(self, text: str) -> bool:
        return self.send(*self._status(text))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    @staticmethod
    def _status(text: str | None) -> list[str]:
        return [] if text is None else ["STATUS=" + " ".join(text.split())]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: the notification variables removed."""
    env = dict(os.environ if environ is None else environ)
    for name in NOTIFY_VARIABLES:
        env.pop(name, None)
    return env
