"""The pipes between the supervisor and a child process.

Downward, the child's stdin carries one JSON line (the resolved config, its generation and index) and
then stays open: end-of-file means the supervisor is gone and the child stops gracefully. Upward, a
dedicated pipe (fd in ``GRCTL_STATUS_FD``, never stdout, which workflow code may print to) carries
lines: ``READY <json>`` (a ``ReadyInfo``) once the child is connected, registered and consuming,
``ERROR <json>`` when it cannot get there, ``FATAL <json>`` when trying again cannot help (the workflow
code does not import); an error's JSON is an ``ErrorReport``, ``entry`` naming the failing
``workflows`` entry.
``NATS down`` / ``NATS up`` say that its connection was lost and is back (for grctld's /readyz).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from enum import StrEnum

import msgspec

STATUS_FD_VARIABLE = "GRCTL_STATUS_FD"


class Role(StrEnum):
    """What a child process of grctld is: its program's argument, log field and metrics label."""

    WORKER = "worker"
    ENGINE = "engine"


class StatusKind(StrEnum):
    """The first word of a line on the status pipe."""

    READY = "READY"
    ERROR = "ERROR"
    FATAL = "FATAL"
    NATS = "NATS"


class ReadyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a child says when it is ready: its pid and, for a worker, the workflow types it consumes
    and the source files it imported (path → SHA-256 of the content), which the supervisor watches."""

    pid: int = 0
    workflows: list[str] = msgspec.field(default_factory=list)
    files: dict[str, str] = msgspec.field(default_factory=dict)


class ErrorReport(msgspec.Struct, frozen=True, kw_only=True):
    """Why a child cannot be ready; ``entry``: the index of the ``workflows`` entry at fault."""

    message: str
    entry: int | None = None


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

    def ready(self, info: ReadyInfo) -> None:
        self._send(f"{StatusKind.READY} {msgspec.json.encode(info).decode()}")

    def error(self, message: str, fatal: bool = False, entry: int | None = None) -> None:
        """Report why the child cannot be ready; ``entry``: the index of the ``workflows`` entry at fault."""
        body = msgspec.json.encode(ErrorReport(message=" ".join(message.split()), entry=entry)).decode()
        self._send(f"{StatusKind.FATAL if fatal else StatusKind.ERROR} {body}")

    def nats(self, connected: bool) -> None:
        """The NATS connection was lost (reconnecting) or is back: for the supervisor's /readyz."""
        self._send(f"{StatusKind.NATS} " + ("up" if connected else "down"))


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


def parse_status(line: str) -> tuple[StatusKind | None, str]:
    """``READY {...}`` → (READY, "{...}"); anything unknown is (None, line)."""
    kind, _, rest = line.strip().partition(" ")
    return (StatusKind(kind), rest) if kind in StatusKind.__members__ else (None, line.strip())


def parse_ready(rest: str) -> ReadyInfo:
    """A ``READY`` line's JSON; what cannot be read says no more than that the child is ready."""
    try:
        return msgspec.json.decode(rest or "{}", type=ReadyInfo)
    except msgspec.DecodeError:  # also a ValidationError
        return ReadyInfo()


def parse_error(rest: str) -> ErrorReport:
    """An ``ERROR``/``FATAL`` line's JSON (plain text, from a child of an earlier version, is the
    message itself)."""
    try:
        return msgspec.json.decode(rest, type=ErrorReport)
    except msgspec.DecodeError:  # also a ValidationError
        return ErrorReport(message=rest)
