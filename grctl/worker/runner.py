"""Executes one worker task: resolve the handler, report the pick-up, call the handler, publish the
step's result — or a ``fail_step`` when the handler raised. When the step could not talk to NATS
(``StepInterrupted``: its own writes and reads kept failing for the time it had) or its result cannot be
published, nothing is reported and the task is delivered again: transport trouble is never the
handler's failure."""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

import msgspec

from grctl.codec import CodecRegistry, default_codec
from grctl.models.common import RunInfo, RunStatus, utcnow
from grctl.models.directive import Directive, DirectiveKind, Event, Start, Step, StepPickedUp, StepResult
from grctl.models.history import HistoryEvent
from grctl.nats.connection import Connection
from grctl.ops import metrics
from grctl.worker.binding import bind_arguments
from grctl.worker.context import Context
from grctl.worker.errors import HandlerNotFoundError, NextDirectiveMissingError, StepInterrupted
from grctl.worker.next import error_details
from grctl.worker.publisher import Publisher
from grctl.worker.replay import ReplayCursor
from grctl.worker.runtime import StepRuntime
from grctl.workflow import HandlerConfig, Workflow

log = logging.getLogger("grctl.worker")


class ResultReport(enum.Enum):
    REPORTED = "reported"  # the step's result (or its failure) is in the stream
    NOT_REPORTED = "not_reported"  # publishing the result failed: the task must be delivered again


def resolve(workflow: Workflow, task: Directive) -> tuple[str, HandlerConfig | None, Any]:
    """Step name, handler and payload of a worker task."""
    msg = task.msg
    if isinstance(msg, Start):
        return "start", workflow.start_handler, msg.input
    if isinstance(msg, Step):
        return msg.step_name, workflow.step_handlers.get(msg.step_name), None
    if isinstance(msg, Event):
        name = msg.event_name
        return name, workflow.event_handlers.get(name) or workflow.step_handlers.get(name), msg.payload
    raise ValueError(f"a worker task cannot be of kind {task.kind}")


def _missing(workflow: Workflow, task: Directive, step_name: str) -> HandlerNotFoundError:
    if task.kind == DirectiveKind.start:
        return HandlerNotFoundError(f"workflow {workflow.workflow_type!r} has no start handler")
    what = "event or step" if task.kind == DirectiveKind.event else "step"
    return HandlerNotFoundError(f"workflow {workflow.workflow_type!r} has no {what} handler named "
                                f"{step_name!r}")


def step_deadline(task: Directive) -> float:
    """The ``time.monotonic()`` by which the engine expects the task done (0 when it did not say)."""
    timeout_ms = getattr(task.msg, "timeout_ms", 0) or 0
    if timeout_ms <= 0:
        return 0.0
    left = (task.timestamp + timedelta(milliseconds=timeout_ms) - utcnow()).total_seconds()
    return time.monotonic() + left


def _retrieve(future: asyncio.Future[Any]) -> None:
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


class StepRunner:
    def __init__(self, workflow: Workflow, task: Directive, history: list[HistoryEvent],
                 connection: Connection, publisher: Publisher, workflow_logger: logging.Logger,
                 codec: CodecRegistry = default_codec) -> None:
        self.workflow = workflow
        self.task = task
        step_name, self.config, self.payload = resolve(workflow, task)
        self.failed = False  # the handler raised: the step's failure is what gets reported
        run_info: RunInfo = msgspec.structs.replace(task.run_info)
        if task.kind == DirectiveKind.start:
            run_info = msgspec.structs.replace(run_info, status=RunStatus.running, started_at=utcnow())
        self.runtime = StepRuntime(
            workflow=workflow, task=task, run_info=run_info, step_name=step_name, connection=connection,
            publisher=publisher, cursor=ReplayCursor(history), workflow_logger=workflow_logger,
            deadline=step_deadline(task), codec=codec,
        )

    @property
    def step_name(self) -> str:
        return self.runtime.step_name

    def _outcome_label(self, outcome: ResultReport | None) -> str:
        if outcome is None:
            return "cancelled"
        if outcome is ResultReport.NOT_REPORTED:
            return "not_reported"
        return "failed" if self.failed else "ok"

    def _picked_up(self) -> Directive:
        now = utcnow()
        rt = self.runtime
        return Directive(id=str(uuid.uuid4()), timestamp=now,
                         kind=DirectiveKind.step_picked_up, run_info=rt.run_info,
                         msg=StepPickedUp(step_name=rt.step_name, worker_id=rt.worker_id, timestamp=now))

    async def run(self) -> ResultReport:
        started = time.monotonic()
        wf_type = self.workflow.workflow_type
        metrics.step_started(wf_type)
        outcome: ResultReport | None = None
        try:
            outcome = await self._run()
            return outcome
        finally:
            metrics.step_finished(wf_type, self._outcome_label(outcome), time.monotonic() - started)

    async def _run(self) -> ResultReport:
        rt = self.runtime
        token = rt.activate()
        ctx = Context(rt)
        started = time.monotonic()
        picked: asyncio.Future[Any] | None = None
        try:
            try:
                if not rt.cursor.history:
                    picked = await rt.publisher.directive_nowait(self._picked_up())
                if self.config is None:
                    raise _missing(self.workflow, self.task, rt.step_name)
                result = await self._call(ctx, self.config)
            except StepInterrupted as exc:
                log.warning("step %s of run %s could not talk to NATS (%s); the task will be delivered "
                            "again", rt.step_name, rt.run_info.id, exc)
                return ResultReport.NOT_REPORTED
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # terminated or shut down: no result
                result = self._failed(ctx, exc)  # a CancelledError raised by handler code
            except Exception as exc:
                result = self._failed(ctx, exc)
            assert isinstance(result.msg, StepResult)
            result.msg.duration_ms = int((time.monotonic() - started) * 1000)
            try:
                await rt.publisher.directive(result, budget=rt.io_budget)
            except (Exception, StepInterrupted) as exc:
                log.warning("could not publish the result of step %s of run %s (%s); the task will be "
                            "delivered again", rt.step_name, rt.run_info.id, exc)
                return ResultReport.NOT_REPORTED
            return ResultReport.REPORTED
        finally:
            if picked is not None:
                _retrieve(picked)
            await self._close_handles()
            rt.deactivate(token)

    async def _call(self, ctx: Context, config: HandlerConfig) -> Directive:
        kwargs = bind_arguments(config.spec, self.payload, self.runtime.codec)
        returned = config.handler(ctx, **kwargs)
        if inspect.isawaitable(returned):
            returned = await returned
        if not isinstance(returned, Directive) or returned.kind != DirectiveKind.step_result:
            raise NextDirectiveMissingError(self.runtime.step_name, returned)
        late_writes = self.runtime.store.take_pending()
        if late_writes:  # store writes made after ctx.next.*: the engine ignores this field
            returned.kv_revs = late_writes
        return returned

    def _failed(self, ctx: Context, exc: BaseException) -> Directive:
        rt = self.runtime
        self.failed = True
        log.warning("step %s of run %s (%s) failed: %s: %s", rt.step_name, rt.run_info.id,
                    rt.run_info.wf_type, type(exc).__name__, exc, exc_info=exc)
        return ctx.next.fail_step(rt.step_name, error_details(exc, with_qualified_type=False))

    async def _close_handles(self) -> None:
        for handle in self.runtime.closers:
            try:
                await handle.discard()
            except Exception:
                log.debug("closing a child handle failed", exc_info=True)
        self.runtime.closers.clear()
