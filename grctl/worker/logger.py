"""``ctx.logger``: the worker's workflow logger (or the root logger), silent while a step replays."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any


class ReplayAwareLogger:
    def __init__(self, logger: logging.Logger, replaying: Callable[[], bool]) -> None:
        self._logger = logger
        self._replaying = replaying

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def isEnabledFor(self, level: int) -> bool:
        return not self._replaying() and self._logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            kwargs.setdefault("stacklevel", 2)
            self._logger.log(level, msg, *args, **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        kwargs.setdefault("exc_info", True)
        self.log(logging.ERROR, msg, *args, **kwargs)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        self.log(logging.CRITICAL, msg, *args, **kwargs)
