"""The state of one step execution, reachable from tasks and context helpers through a context var.

Everything replayable goes through ``replayed()`` (is this operation in the recorded history?) and
``record()`` (write its history event, tagged with the operation id).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from grctl.codec import CodecRegistry, default_codec
from grctl.models.common import RunInfo
from grctl.models.directive import Directive
from grctl.models.history import HistoryEvent, HistoryKind
from grctl.nats import jetstream, subjects
from grctl.nats.connection import Connection
from grctl.worker.opid import OperationCounter
from grctl.worker.publisher import Publisher
from grctl.worker.replay import ReplayCursor
from grctl.worker.store import Store
from grctl.workflow import Workflow

_current: ContextVar[StepRuntime | None] = ContextVar("grctl_step_runtime", default=None)


def current_runtime() -> StepRuntime | None:
    """The step being executed by this asyncio task, or None outside a worker."""
    return _current.get()


def require_runtime(what: str) -> StepRuntime:
    runtime = _current.get()
    if runtime is None:
        raise RuntimeError(f"{what} can only be used inside a workflow handler run by a worker")
    return runtime


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
    codec: CodecRegistry = field(default_factory=lambda: default_codec)  # the worker's

    def __post_init__(self) -> None:
        self.store = Store(self._load_kv, self.codec)

    @property
    def worker_id(self) -> str:
        return self.publisher.worker_id

    @property
    def replaying(self) -> bool:
        return self.cursor.replaying

    def next_operation_id(self, fn_name: str, args: dict[str, Any]) -> str:
        return self.ops.next_id(fn_name, args)

    async def replayed(self, op_id: str, kinds: frozenset[HistoryKind]) -> HistoryEvent | None:
        return await self.cursor.match(op_id, kinds)

    async def record(self, kind: HistoryKind, msg: object, op_id: str) -> None:
        await self.publisher.history(self.run_info, kind, msg, op_id)

    async def _load_kv(self, key: str) -> bytes | None:
        found = await jetstream.get_last(self.connection.nc,
                                         subjects.kv(self.run_info.wf_id, self.run_info.id, key))
        return found.data if found is not None else None

    def activate(self) -> Token[StepRuntime | None]:
        return _current.set(self)

    @staticmethod
    def deactivate(token: Token[StepRuntime | None]) -> None:
        _current.reset(token)
