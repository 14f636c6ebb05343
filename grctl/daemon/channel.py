"""The pipes between the supervisor and a child process.

Downward, the child's stdin carries one JSON line (the resolved config, its generation and index) and
then stays open: end-of-file means the supervisor is gone and the child stops gracefully. Upward, a
dedicated pipe (fd in ``GRCTL_STATUS_FD``, never stdout, which workflow code may print to) carries
lines: ``READY <json>`` once the child is connected, registered and consuming, ``ERROR <json>`` when
it cannot get there, ``FATAL <json>`` when trying again cannot help (the workflow code does not import);
an error's JSON is ``{"message": ..., "entry": N}``, ``entry`` naming the failing ``workflows`` entry.
``NATS down`` / ``NATS up`` say that its connection was lost and is back (for grctld's /readyz).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import msgspec

STATUS_FD_VARIABLE = "GRCTL_STATUS_FD"


class Spec(msgspec.Struct, frozen=True, kw_only=True):
    """What a child is told on stdin: which config, which generation, which process of it."""

    config: msgspec.Raw
    generation: int = 0
    index: int = 0
    # On a reload: the workflow types of the generation this one replaces (None at the first start).
    replaces: list[str] | None = None


class StatusPipe:
    """The child's end of the upward pipe; writes never raise (the supervisor may be gone)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def from_environment(cls) -> StatusPipe:
        raw = os.environ.pop(STATUS_FD_VARIABLE, "")
        return cls(int(raw) if raw.isdigit() else None)

    def _send(self, line: str) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, (" ".join(line.split()) + "\n").encode())
        except OSError:
            pass

    def ready(self, info: dict[str, Any] | None = None) -> None:
        self._send("READY " + json.dumps(info or {}))

    def error(self, message: str, fatal: bool = False, entry: int | None = None) -> None:
        """Report why the child cannot be ready; ``entry``: the index of the ``workflows`` entry at fault."""
        body = json.dumps({"message": " ".join(message.split()), "entry": entry})
        self._send(("FATAL " if fatal else "ERROR ") + body)

    def nats(self, connected: bool) -> None:
        """The NATS connection was lost (reconnecting) or is back: for the supervisor's /readyz."""
        self._send("NATS " + ("up" if connected else "down"))


def read_spec(fd: int = 0) -> Spec:
    """The one JSON line on stdin, read unbuffered (nothing after it is consumed)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    if not line.strip():
        raise SystemExit("grctl.daemon child: no specification on stdin (this program is started by grctld)")
    return msgspec.json.decode(bytes(line), type=Spec)


def on_parent_exit(loop: asyncio.AbstractEventLoop, callback: Callable[[], None], fd: int = 0) -> None:
    """Call ``callback`` when stdin reaches end-of-file: the supervisor went away."""

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            callback()

    loop.add_reader(fd, readable)


def parse_status(line: str) -> tuple[str, str]:
    """``READY {...}`` → ("READY", "{...}"); anything unknown is ("", line)."""
    kind, _, rest = line.strip().partition(" ")
    return (kind, rest) if kind in ("READY", "ERROR", "FATAL", "NATS") else ("", line.strip())


def parse_error(rest: str) -> tuple[str, int | None]:
    """The message and the failing ``workflows`` entry of an ``ERROR``/``FATAL`` line's JSON (plain
    text, from a child of an earlier version, is the message itself)."""
    try:
        body = json.loads(rest)
    except ValueError:
        return rest, None
    if not isinstance(body, dict):
        return rest, None
    entry = body.get("entry")
    return str(body.get("message", "")), entry if isinstance(entry, int) else None
