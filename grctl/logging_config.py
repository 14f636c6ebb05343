"""Console logging for programs that use the SDK: ``setup_logging(level)`` and ``get_logger(name)``.

    setup_logging(logging.DEBUG)        # one line per record on stdout: LEVEL HH:MM:SS [where] message
    log = get_logger(__name__)

``setup_logging`` installs one handler on the root logger; calling it again replaces that handler
(and sets the new level) instead of printing every record twice.
"""

from __future__ import annotations

import logging
import sys


class ConsoleFormatter(logging.Formatter):
    """``LEVEL HH:MM:SS [module.function:line] message``, then the traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        where = record.module if record.funcName == "<module>" else (
            f"{record.module}.{record.funcName}:{record.lineno}")
        text = f"{record.levelname} {self.formatTime(record, '%H:%M:%S')} [{where}] {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _ConsoleHandler(logging.StreamHandler):
    """The handler ``setup_logging`` owns (recognised, so it is replaced rather than added twice)."""


def setup_logging(level: int = logging.INFO) -> None:
    """Log records of ``level`` and above from every logger to stdout."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ConsoleHandler)]:
        root.removeHandler(handler)
    handler = _ConsoleHandler(sys.stdout)
    handler.setLevel(level)
    handler.setFormatter(ConsoleFormatter())
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str) -> logging.Logger:
    """The logger ``name``, letting every record through to the handlers (they filter by level)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    return logger
