"""Test doubles for the worker: a publisher that records instead of publishing, a JetStream message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from grctl.models.common import RunInfo, utcnow
from grctl.models.directive import Directive, DirectiveKind, StepResult
from grctl.models.history import HistoryEvent, HistoryKind
from grctl.nats.pull import Decision, settle

WORKER = "w_test0.00@host"


class RecordingPublisher:
    worker_id = WORKER

    def __init__(self) -> None:
        self.events: list[HistoryEvent] = []
        self.directives: list[Directive] = []
        self.claims: list[str] = []

    async def claim(self, subject: str, body: bytes, msg_id: str, check: dict[str, str]) -> int:
        self.claims.append(subject)
        return len(self.claims)

    async def history(self, run: RunInfo, kind: HistoryKind, msg: object, operation_id: str,
                      timestamp: datetime | None = None, attempt: int = 0, budget: float = 0.0,
                      headers: dict[str, str] | None = None) -> None:
        self.events.append(HistoryEvent(wf_id=run.wf_id, run_id=run.id, worker_id=WORKER,
                                        timestamp=timestamp or utcnow(), kind=kind, msg=msg,
                                        operation_id=operation_id))

    async def directive(self, directive: Directive, budget: float = 0.0) -> None:
        self.directives.append(directive)

    async def directive_nowait(self, directive: Directive) -> asyncio.Future[object]:
        self.directives.append(directive)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    @property
    def kinds(self) -> list[str]:
        return [str(d.kind) for d in self.directives]

    @property
    def result(self) -> StepResult:
        last = self.directives[-1]
        assert last.kind == DirectiveKind.step_result
        assert isinstance(last.msg, StepResult)
        return last.msg

    def task_kinds(self) -> list[str]:
        return [str(e.kind) for e in self.events if str(e.kind).startswith("task.")]


class FakeMsg:
    """A JetStream message: records how it was settled (as the pull loop settles it)."""

    def __init__(self, data: bytes, num_delivered: int = 1,
                 subject: str = "grctl_worker_task.T.W1.R1") -> None:
        self.data = data
        self.subject = subject
        self.metadata = SimpleNamespace(num_delivered=num_delivered)
        self.settled: list[str] = []
        self.progress = 0

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append("nak")

    async def term(self) -> None:
        self.settled.append("term")

    async def in_progress(self) -> None:
        self.progress += 1


async def handled(handler: Callable[[Any], Awaitable[Decision | None]], msg: FakeMsg) -> None:
    """Run a pull-loop handler on ``msg`` and settle the message with its decision, as the loop does."""
    decision = await handler(msg)
    if decision is not None:
        await settle(msg, decision)  # type: ignore[arg-type]
