"""Configuration problems that name their place: ``grctl.yaml:4:19: nats.servers[0]: message``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from grctl.daemon.yamlmarks import Location, Path


def format_path(path: Path) -> str:
    """``('nats', 'servers', 0)`` → ``nats.servers[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong, where it is (a file position, an environment variable or a flag)."""

    source: str
    location: Location | None
    path: Path
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.location is not None:
            where += f":{self.location.line}:{self.location.column}"
        dotted = format_path(self.path)
        text = f"{dotted}: {self.message}" if dotted else self.message
        return " ".join(f"{where}: {text}".split())  # always one line

    def sort_key(self) -> tuple[str, int, int]:
        loc = self.location or Location(0, 0)
        return (self.source, loc.line, loc.column)


class ConfigError(Exception):
    """The configuration cannot be used; ``str()`` is one line per problem."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def first(self) -> str:
        return str(self.problems[0]) if self.problems else "invalid configuration"
