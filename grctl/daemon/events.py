"""What the supervisor's loop reacts to. Signal handlers, the file watch, the periodic check and the
child watchers only put one of these on its queue; the loop handles them one at a time."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from grctl.daemon.procs import ChildProcess


class ConfigCheck(StrEnum):
    """Who looked at the configuration file: a file event, or the periodic content check."""

    WATCH = "watch"
    POLL = "poll"


@dataclass(frozen=True, slots=True)
class SignalReceived:
    signum: int


@dataclass(frozen=True, slots=True)
class ConfigTouched:
    by: ConfigCheck


@dataclass(frozen=True, slots=True)
class SourcesTouched:
    paths: frozenset[str]


@dataclass(frozen=True, slots=True)
class ChildExited:
    proc: ChildProcess


@dataclass(frozen=True, slots=True)
class Stopped:
    """The graceful stop has finished: the loop returns ``code``."""

    code: int


Event = SignalReceived | ConfigTouched | SourcesTouched | ChildExited | Stopped
