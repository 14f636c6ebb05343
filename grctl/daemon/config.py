"""Load grctl.yaml: YAML with positions → environment and flag overrides → schema → resolved config.

Precedence: defaults < file < environment (``GRCTL_NATS_SERVERS``, ...) < command-line flags. Every
problem names its place: ``file:line:col`` for the file, the variable's name for the environment, the
flag for the command line.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from grctl.daemon import schema
from grctl.daemon.errors import ConfigError, Problem
from grctl.daemon.model import DaemonConfig
from grctl.daemon.resolve import Resolver
from grctl.daemon.yamlmarks import Marks, Path, YamlError, load_with_marks
from grctl.nats.connection import SERVER_ENVIRONMENT, split_servers

DEFAULT_PATH = "/etc/grctl/grctl.yaml"

SERVER_VARIABLES = SERVER_ENVIRONMENT

# variable → (path in the file, converter from the variable's text)
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "GRCTL_NATS_NAME": (("nats", "name"), str),
    "GRCTL_NATS_USER": (("nats", "user"), str),
    "GRCTL_NATS_PASSWORD": (("nats", "password"), str),
    "GRCTL_NATS_TOKEN": (("nats", "token"), str),
    "GRCTL_NATS_CREDENTIALS_FILE": (("nats", "credentials_file"), str),
    "GRCTL_NATS_NKEY_SEED_FILE": (("nats", "nkey_seed_file"), str),
    "GRCTL_NATS_TLS_CA_FILE": (("nats", "tls", "ca_file"), str),
    "GRCTL_NATS_TLS_CERT_FILE": (("nats", "tls", "cert_file"), str),
    "GRCTL_NATS_TLS_KEY_FILE": (("nats", "tls", "key_file"), str),
    "GRCTL_LOG_LEVEL": (("logging", "level"), str.lower),
    "GRCTL_LOG_FORMAT": (("logging", "format"), str.lower),
    "GRCTL_SHUTDOWN_TIMEOUT": (("shutdown_timeout",), lambda s: _number_or_text(s)),
    "GRCTL_WORKER_PROCESSES": (("worker", "processes"), lambda s: _number_or_text(s)),
    "GRCTL_WORKER_MAX_CONCURRENT_STEPS": (("worker", "max_concurrent_steps"), lambda s: _number_or_text(s)),
}


@dataclass(frozen=True)
class Overrides:
    """Command-line flags that override the file and the environment."""

    log_level: str | None = None
    nats_servers: tuple[str, ...] | None = None


def _number_or_text(text: str) -> Any:
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


class _Locator:
    """Turns (path, message) into a Problem that points at the file, a variable or a flag."""

    def __init__(self, source: str, marks: Marks, origins: dict[Path, str]) -> None:
        self.source = source
        self.marks = marks
        self.origins = origins

    def __call__(self, path: Path, message: str, at_key: bool = False) -> Problem:
        shown = path[:-1] if at_key else path
        for end in range(len(path), 0, -1):
            origin = self.origins.get(path[:end])
            if origin is not None:
                return Problem(origin, None, shown, message)
        below = [o for p, o in self.origins.items() if p[: len(path)] == path]  # a section set by variables
        if below and path not in self.marks.values:
            return Problem(" and ".join(sorted(set(below))), None, shown, message)
        if not self.marks.values:  # no file: the environment and the defaults only
            return Problem(self.source, None, shown, message)
        where = self.marks.key(path) if at_key else self.marks.value(path)
        return Problem(self.source, where, shown, message)


def read_document(path: str) -> tuple[dict[str, Any], Marks]:
    """The file's top-level mapping and its marks; ConfigError for unreadable, empty or non-YAML files."""
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(path, None, (), "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(path, None, (), "is a directory, not a configuration file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(path, None, (), f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
        ) from None
    except OSError as exc:
        raise ConfigError([Problem(path, None, (), f"cannot read: {exc.strerror}")]) from None
    try:
        data, marks = load_with_marks(text)
    except YamlError as exc:
        raise ConfigError([Problem(path, exc.location, (), exc.message)]) from None
    if data is None:
        raise ConfigError(
            [Problem(path, marks.value(()), (), "the file is empty (it needs at least 'workflows', or "
                                                "'engine' for an engine-only node)")]
        )
    if not isinstance(data, dict):
        message = f"the top level must be a mapping of keys to values, got {schema.describe(data)}"
        raise ConfigError([Problem(path, marks.value(()), (), message)])
    return data, marks


def apply_overrides(
    data: dict[str, Any], environ: Mapping[str, str], overrides: Overrides
) -> dict[Path, str]:
    """Write environment and flag values into ``data``; returns where each overridden path came from."""
    origins: dict[Path, str] = {}
    for name in SERVER_VARIABLES:
        raw = environ.get(name, "")
        if raw.strip():
            try:
                servers = split_servers(raw)
            except ValueError as exc:
                raise ConfigError(
                    [Problem(f"environment {name}", None, ("nats", "servers"), str(exc))]
                ) from None
            if servers:
                _put(data, ("nats", "servers"), servers)
                origins[("nats", "servers")] = f"environment {name}"
                break
    for name, (path, convert) in ENV_OVERRIDES.items():
        value = environ.get(name)
        if value:
            _put(data, path, convert(value))
            origins[path] = f"environment {name}"
    if overrides.log_level:
        _put(data, ("logging", "level"), overrides.log_level.lower())
        origins[("logging", "level")] = "--log-level"
    if overrides.nats_servers:
        _put(data, ("nats", "servers"), list(overrides.nats_servers))
        origins[("nats", "servers")] = "--nats-server"
    return origins


def load_config(
    path: str = DEFAULT_PATH,
    environ: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
    daemon: bool = True,
) -> DaemonConfig:
    """Read, check and resolve the configuration; raises ConfigError listing every problem found.
    ``daemon``: for grctld, which needs workflows or an engine to run (``grctl -c`` does not)."""
    env = os.environ if environ is None else environ
    data, marks = read_document(path)
    return _resolve(data, marks, path, FsPath(path).resolve().parent, env, overrides, daemon)


def load_environment(environ: Mapping[str, str] | None = None,
                     overrides: Overrides | None = None) -> DaemonConfig:
    """The configuration without a file: defaults, the environment and the flags (``grctl`` without
    ``-c``); relative paths are relative to the working directory."""
    env = os.environ if environ is None else environ
    return _resolve({}, Marks(), "environment", FsPath.cwd(), env, overrides, daemon=False)


def _resolve(data: dict[str, Any], marks: Marks, source: str, base: FsPath, env: Mapping[str, str],
             overrides: Overrides | None, daemon: bool) -> DaemonConfig:
    merged = copy.deepcopy(data)
    origins = apply_overrides(merged, env, overrides or Overrides())
    locate = _Locator(source, marks, origins)
    found = [locate(p, message, at_key) for p, message, at_key in schema.problems(merged)]
    if found:
        raise ConfigError(found)
    return Resolver(merged, source, base, env, origins, locate, daemon).build()


def workflow_problem(path: str, index: int, message: str) -> Problem:
    """A problem with entry ``index`` of ``workflows``, located in the file when it can be read."""
    try:
        _, marks = read_document(path)
        where = marks.value(("workflows", index))
    except ConfigError:
        where = None
    return Problem(path, where, ("workflows", index), message)
