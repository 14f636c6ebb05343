"""The context every handler receives as its first argument.

``ctx.run`` (RunInfo), ``ctx.store``, ``ctx.next`` (result builders), ``ctx.logger`` (silent during
replay), and the deterministic helpers ``now``/``random``/``uuid4``/``sleep``: live they record their
value in the run's history; on a re-executed step they return the recorded value
(docs/protocol.md#recorded-values).
"""

from __future__ import annotations

import asyncio
import random as _random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from grctl.models.common import RunInfo, utcnow
from grctl.models.history import (
    HistoryKind,
    RandomRecorded,
    SleepRecorded,
    TimestampRecorded,
    UuidRecorded,
)
from grctl.worker import child
from grctl.worker.logger import ReplayAwareLogger
from grctl.worker.next import NextBuilder
from grctl.worker.store import Store

if TYPE_CHECKING:
    from grctl.worker.runtime import StepRuntime

T = TypeVar("T")


def _value(make: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """An operation whose live value is ``make()``."""

    async def live() -> T:
        return make()

    return live


class Context:
    def __init__(self, runtime: StepRuntime) -> None:
        self._rt = runtime
        self._next = NextBuilder(runtime)
        self._logger = ReplayAwareLogger(runtime.workflow_logger, lambda: runtime.replaying)

    @property
    def run(self) -> RunInfo:
        """The run being executed."""
        return self._rt.run_info

    @property
    def step_name(self) -> str:
        return self._rt.step_name

    @property
    def worker_id(self) -> str:
        return self._rt.worker_id

    @property
    def is_replaying(self) -> bool:
        """True while this step re-executes operations recorded by an earlier attempt."""
        return self._rt.replaying

    @property
    def store(self) -> Store:
        return self._rt.store

    @property
    def next(self) -> NextBuilder:
        return self._next

    @property
    def logger(self) -> ReplayAwareLogger:
        return self._logger

    async def now(self) -> datetime:
        """The current UTC time, the same on every execution of this step."""
        return await self._rt.once("now", {}, HistoryKind.timestamp_recorded, _value(utcnow),
                                   lambda v: TimestampRecorded(value=v), lambda e: e.msg.value)

    async def random(self) -> float:
        """A float in [0, 1), the same on every execution of this step."""
        return await self._rt.once("random", {}, HistoryKind.random_recorded, _value(_random.random),
                                   lambda v: RandomRecorded(value=v), lambda e: e.msg.value)

    async def uuid4(self) -> uuid.UUID:
        """A random UUID, the same on every execution of this step."""
        return await self._rt.once("uuid4", {}, HistoryKind.uuid_recorded, _value(uuid.uuid4),
                                   lambda v: UuidRecorded(value=str(v)), lambda e: uuid.UUID(e.msg.value))

    async def sleep(self, duration: timedelta | float) -> None:
        """Sleep in-process; a re-executed step skips a sleep that already completed."""
        if not isinstance(duration, timedelta):
            duration = timedelta(seconds=float(duration))
        duration_ms = int(duration.total_seconds() * 1000)
        await self._rt.once("sleep", {"duration_ms": duration_ms}, HistoryKind.sleep_recorded,
                            lambda: asyncio.sleep(duration.total_seconds()),
                            lambda _: SleepRecorded(duration_ms=duration_ms), lambda _: None)

    # --- child workflows (grctl.worker.child) ------------------------------------------------------

    async def start_child(self, workflow_type: str, workflow_id: str, workflow_input: Any = None,
                          workflow_timeout: timedelta | None = None,
                          on_completed_step: Any = None) -> Any:
        """Start a child workflow; returns its handle. See ``grctl.worker.child.start_child``."""
        return await child.start_child(self._rt, workflow_type, workflow_id, workflow_input,
                                       workflow_timeout, on_completed_step)

    async def run_child(self, workflow_type: str, workflow_id: str, workflow_input: Any = None,
                        workflow_timeout: timedelta | None = None, timeout: float | None = None) -> Any:
        """Start a child workflow and wait for its result."""
        return await child.run_child(self._rt, workflow_type, workflow_id, workflow_input,
                                     workflow_timeout, timeout)

    async def send_to_parent(self, event_name: str, payload: Any = None) -> None:
        """Send an event to the parent workflow of this run."""
        await child.send_to_parent(self._rt, event_name, payload)
