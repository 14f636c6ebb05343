"""The state of one step execution, reachable from tasks and context helpers through a context var.

Everything replayable goes through ``replayed()`` (is this operation in the recorded history?) and
``record()`` (write its history event, tagged with the operation id). Every read or write the step does
through NATS goes through ``io()``: transport trouble is retried for the time the step has left, then
``StepInterrupted`` leaves the step to be delivered again instead of failing it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, TypeVar

from grctl import settings
from grctl.codec import CodecRegistry, default_codec
from grctl.models.common import RunInfo
from grctl.models.directive import Directive
from grctl.models.history import HistoryEvent, HistoryKind
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.direct import get_last
from grctl.nats.jetstream import JetStreamError
from grctl.nats.retry import is_transient, retrying
from grctl.worker.claim import StepClaim, lost_claim
from grctl.worker.errors import StepInterrupted, StepSuperseded
from grctl.worker.opid import OperationCounter
from grctl.worker.publisher import Publisher
from grctl.worker.replay import ReplayCursor
from grctl.worker.store import Store
from grctl.workflow import Workflow

T = TypeVar("T")


_current: ContextVar[StepRuntime | None] = ContextVar("grctl_step_runtime", default=None)


def current_runtime() -> StepRuntime | None:
    """The step being executed by this asyncio task, or None outside a worker."""
    return _current.get()


@dataclass
class StepRuntime:
    workflow: Workflow
    task: Directive  # the worker task being executed
    run_info: RunInfo  # this execution's copy (status/started_at updated on the start step)
    step_name: str
    connection: Connection
    publisher: Publisher
    cursor: ReplayCursor
    workflow_logger: logging.Logger
    ops: OperationCounter = field(default_factory=OperationCounter)
    closers: list[Any] = field(default_factory=list)  # child handles opened in this step
    deadline: float = 0.0  # time.monotonic() by which the step should be done (0: unknown)
    codec: CodecRegistry = field(default_factory=lambda: default_codec)  # the worker's
    task_seq: int = 0  # the task message's stream sequence (0: unknown); reads must see the stream this far

    def __post_init__(self) -> None:
        self.store = Store(self._load_kv, self.codec)
        self.claim = StepClaim(self.connection, self.publisher, self.task.run_info, self.task_seq)

    @property
    def io_budget(self) -> float:
        """Seconds a NATS operation of this step may keep retrying."""
        left = self.deadline - time.monotonic() if self.deadline else 0.0
        return max(left, settings.MIN_IO_BUDGET)

    async def io(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """Run a NATS operation of this step, retrying transport trouble within the step's time."""
        try:
            return await retrying(operation, self.io_budget, what=what)
        except Exception as exc:
            if is_transient(exc):
                raise StepInterrupted(f"{what}: {type(exc).__name__}: {exc}") from exc
            raise

    @property
    def worker_id(self) -> str:
        return self.publisher.worker_id

    @property
    def replaying(self) -> bool:
        return self.cursor.replaying

    def next_operation_id(self, fn_name: str, args: dict[str, Any]) -> str:
        return self.ops.next_id(fn_name, args)

    async def replayed(self, op_id: str, kinds: frozenset[HistoryKind]) -> HistoryEvent | None:
        """The recorded event of this operation; None when it must run live, and then this execution
        holds the step's claim (``claim.py``): nothing recorded by another execution runs again."""
        while True:
            generation = self.claim.generation
            event = await self.cursor.match(op_id, kinds)
            if event is not None:
                return event
            if await self._take_claim(generation):
                return None

    async def _take_claim(self, generation: int) -> bool:
        return await self.io(lambda: self.claim.take(generation, self.cursor), "claiming the step")

    async def once(self, name: str, args: dict[str, Any], kind: HistoryKind,
                   live: Callable[[], Awaitable[T]], recorded: Callable[[T], object],
                   replay: Callable[[HistoryEvent], T]) -> T:
        """The replay rule, for an operation recorded by one history event of ``kind``: the operation
        gets its id; on a re-executed step that recorded it, ``replay(event)`` gives its value back;
        otherwise ``live()`` does it and ``recorded(value)`` is the message written for it."""
        op = self.next_operation_id(name, args)
        event = await self.replayed(op, frozenset({kind}))
        if event is not None:
            return replay(event)
        value = await live()
        await self.record(kind, recorded(value), op)
        return value

    async def record(self, kind: HistoryKind, msg: object, op_id: str, timestamp: Any = None,
                     attempt: int = 0) -> None:
        try:
            await self.publisher.history(self.run_info, kind, msg, op_id, timestamp, attempt=attempt,
                                         budget=self.io_budget, headers=self.claim.write_headers())
        except JetStreamError as exc:
            if lost_claim(exc):
                raise StepSuperseded(f"another execution claimed step {self.step_name} of run "
                                     f"{self.run_info.id}") from exc
            raise

    async def _load_kv(self, key: str) -> bytes | None:
        subject = subjects.kv(self.run_info.wf_id, self.run_info.id, key)
        # The task was committed with the store writes before it: a leader that does not hold the task
        # yet (elected a moment ago) would report a written key as missing.
        found = await self.io(lambda: get_last(self.connection.nc, subject, known_seq=self.task_seq),
                              f"reading store key {key!r}")
        return found.data if found is not None else None

    def activate(self) -> Token[StepRuntime | None]:
        return _current.set(self)

    @staticmethod
    def deactivate(token: Token[StepRuntime | None]) -> None:
        _current.reset(token)
