"""The event loop grctl's own long-running programs run on (the engine, grctld's worker and engine
processes): uvloop where it is installed, which takes 15-25 % off the CPU the engine and a worker spend
per step (README, Performance), else asyncio's own. ``GRCTL_EVENT_LOOP=asyncio`` chooses asyncio's loop,
``GRCTL_EVENT_LOOP=uvloop`` insists on uvloop. Programs that build a ``Worker`` themselves choose their
own loop (``uvloop.run(main())`` works)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from grctl import settings

T = TypeVar("T")

ENV = "GRCTL_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


def choice() -> str:
    value = os.environ.get(ENV, "").strip().lower() or settings.EVENT_LOOP
    if value not in CHOICES:
        raise ValueError(f"{ENV} must be one of {', '.join(CHOICES)}, got {value!r}")
    return value


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``GRCTL_EVENT_LOOP`` chooses."""
    wanted = choice()
    if wanted != "asyncio":
        try:
            import uvloop
        except ImportError:
            if wanted == "uvloop":
                main.close()
                raise RuntimeError(f"{ENV}=uvloop but uvloop is not installed") from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)
