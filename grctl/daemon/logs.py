"""Logging for grctld and its children: text or JSON lines, one destination, secrets masked.

Every record carries the process role (``supervisor``, ``worker``, ``engine``) and, for workers, the
generation number. Whatever a record says (message, arguments, traceback), known secret values are
replaced by a mask in the final line, so a password in an exception text cannot leak either.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterable
from typing import Any

from grctl.daemon.model import MASK, LoggingConfig

_OURS = "_grctl_handler"
_TEXT = "%(asctime)s %(levelname)-7s %(role)s[%(process)d]%(gen)s %(name)s: %(message)s"


class _Context(logging.Filter):
    def __init__(self, role: str, generation: int | None) -> None:
        super().__init__()
        self.role = role
        self.generation = generation

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        record.generation = self.generation
        record.gen = f" gen={self.generation}" if self.generation is not None else ""
        return True


class _Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if s}
        values |= {json.dumps(s)[1:-1] for s in values}  # as they appear inside JSON strings
        self.secrets = sorted(values, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        return line


class TextFormatter(logging.Formatter):
    def __init__(self, redact: _Redactor) -> None:
        super().__init__(_TEXT)
        self.redact = redact

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _timestamp(record)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record)).replace("\n", "\n    ")


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: _Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "role": getattr(record, "role", None),
            "pid": record.process,
        }
        generation = getattr(record, "generation", None)
        if generation is not None:
            entry["generation"] = generation
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, ensure_ascii=False, default=str))


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


def _handler(destination: str) -> logging.Handler:
    if destination == "stderr":
        return logging.StreamHandler(sys.stderr)
    if destination == "stdout":
        return logging.StreamHandler(sys.stdout)
    return logging.handlers.WatchedFileHandler(destination, encoding="utf-8")


def configure_logging(
    cfg: LoggingConfig, secrets: Iterable[str] = (), role: str = "supervisor", generation: int | None = None
) -> None:
    """(Re)configure the root logger; safe to call again on reload."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    redact = _Redactor(secrets)
    handler = _handler(cfg.destination)
    setattr(handler, _OURS, True)
    handler.setFormatter(JsonFormatter(redact) if cfg.format == "json" else TextFormatter(redact))
    handler.addFilter(_Context(role, generation))
    root.addHandler(handler)
    root.setLevel(cfg.level.upper())
    workflow_logger(cfg)
    # nats-py logs every reconnect attempt at error level through its own callbacks: ours are enough.
    logging.getLogger("nats").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("watchfiles").setLevel(max(logging.WARNING, root.level))


def workflow_logger(cfg: LoggingConfig) -> logging.Logger:
    """The logger ``ctx.logger`` writes through, at its configured level."""
    logger = logging.getLogger(cfg.workflow_logger.name)
    logger.setLevel((cfg.workflow_logger.level or cfg.level).upper())
    return logger
