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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

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

_NOW = frozenset({HistoryKind.timestamp_recorded})
_RANDOM = frozenset({HistoryKind.random_recorded})
_UUID = frozenset({HistoryKind.uuid_recorded})
_SLEEP = frozenset({HistoryKind.sleep_recorded})


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
        rt = self._rt
        op = rt.next_operation_id("now", {})
        event = await rt.replayed(op, _NOW)
        if event is not None:
            return event.msg.value
        value = utcnow()
        await rt.record(HistoryKind.timestamp_recorded, TimestampRecorded(value=value), op)
        return value

    async def random(self) -> float:
        """A float in [0, 1), the same on every execution of this step."""
        rt = self._rt
        op = rt.next_operation_id("random", {})
        event = await rt.replayed(op, _RANDOM)
        if event is not None:
            return event.msg.value
        value = _random.random()
        await rt.record(HistoryKind.random_recorded, RandomRecorded(value=value), op)
        return value

    async def uuid4(self) -> uuid.UUID:
        """A random UUID, the same on every execution of this step."""
        rt = self._rt
        op = rt.next_operation_id("uuid4", {})
        event = await rt.replayed(op, _UUID)
        if event is not None:
            return uuid.UUID(event.msg.value)
        value = uuid.uuid4()
        await rt.record(HistoryKind.uuid_recorded, UuidRecorded(value=str(value)), op)
        return value

    async def sleep(self, duration: timedelta | float) -> None:
        """Sleep in-process; a re-executed step skips a sleep that already completed."""
        if not isinstance(duration, timedelta):
            duration = timedelta(seconds=float(duration))
        rt = self._rt
        duration_ms = int(duration.total_seconds() * 1000)
        op = rt.next_operation_id("sleep", {"duration_ms": duration_ms})
        if await rt.replayed(op, _SLEEP) is not None:
            return
        await asyncio.sleep(duration.total_seconds())
        await rt.record(HistoryKind.sleep_recorded, SleepRecorded(duration_ms=duration_ms), op)

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
