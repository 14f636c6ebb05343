"""Executes one worker task: resolve the handler and bind its arguments, report the pick-up, call the
handler, publish the step's result — or a ``fail_step`` when the handler raised. A task this worker's
code cannot run (no such handler, parameters that do not bind) is held, not failed (``worker.hold``).
When the step could not talk to NATS (``StepInterrupted``: its own writes and reads kept failing for
the time it had) or its result cannot be published, nothing is reported and the task is delivered
again: transport trouble is never the handler's failure."""

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
from grctl.models.directive import (
    Directive,
    DirectiveKind,
    Event,
    Start,
    Step,
    StepHeld,
    StepPickedUp,
    StepResult,
)
from grctl.models.history import HistoryEvent
from grctl.nats.connection import Connection
from grctl.ops import metrics
from grctl.worker.context import Context
from grctl.worker.errors import DispatchEnded, NextDirectiveMissingError, StepInterrupted, StepSuperseded
from grctl.worker.hold import (
    HeldRuns,
    Mismatch,
    bind_or_mismatch,
    hold_delay,
    missing_handler,
    still_dispatched,
)
from grctl.worker.next import error_details
from grctl.worker.publisher import Publisher
from grctl.worker.replay import ReplayCursor
from grctl.worker.runtime import StepRuntime
from grctl.workflow import HandlerConfig, Workflow

log = logging.getLogger("grctl.worker")


class ResultReport(enum.Enum):
    REPORTED = "reported"  # the step's result (or its failure) is in the stream
    NOT_REPORTED = "not_reported"  # publishing the result failed: the task must be delivered again
    HELD = "held"  # this worker's code cannot run the task: handed back for a worker whose code can
    SUPERSEDED = "superseded"  # another execution claimed the step: it settles the task
    ENDED = "ended"  # the dispatch was over already (the history says so): nothing to do, acknowledged


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
                 codec: CodecRegistry = default_codec, held: HeldRuns | None = None,
                 delivered: int = 1, task_seq: int = 0) -> None:
        self.workflow = workflow
        self.task = task
        step_name, self.config, self.payload = resolve(workflow, task)
        self.failed = False  # the handler raised: the step's failure is what gets reported
        self.mismatch: Mismatch | None = None  # set when the task is held instead of run
        self._held = held or HeldRuns()
        self._delivered = delivered
        run_info: RunInfo = msgspec.structs.replace(task.run_info)
        if task.kind == DirectiveKind.start:
            run_info = msgspec.structs.replace(run_info, status=RunStatus.running, started_at=utcnow())
        self.runtime = StepRuntime(
            workflow=workflow, task=task, run_info=run_info, step_name=step_name, connection=connection,
            publisher=publisher, cursor=ReplayCursor(history), workflow_logger=workflow_logger,
            deadline=step_deadline(task), codec=codec, task_seq=task_seq,
        )

    @property
    def step_name(self) -> str:
        return self.runtime.step_name

    def _outcome_label(self, outcome: ResultReport | None) -> str:
        if outcome is None:
            return "cancelled"
        if outcome is not ResultReport.REPORTED:
            return outcome.value
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
            kwargs = self._arguments()
            if isinstance(kwargs, Mismatch):
                return await self._hold(kwargs)
            try:
                if not rt.cursor.history:
                    picked = await rt.publisher.directive_nowait(self._picked_up())
                result = await self._call(ctx, kwargs)
            except StepInterrupted as exc:
                log.warning("step %s of run %s could not talk to NATS (%s); the task will be delivered "
                            "again", rt.step_name, rt.run_info.id, exc)
                return ResultReport.NOT_REPORTED
            except StepSuperseded as exc:
                log.info("step %s of run %s stops here: %s", rt.step_name, rt.run_info.id, exc)
                return ResultReport.ENDED if isinstance(exc, DispatchEnded) else ResultReport.SUPERSEDED
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

    def _arguments(self) -> dict[str, Any] | Mismatch:
        """The handler's arguments, or why this worker's code cannot run the task."""
        if self.config is None:
            return missing_handler(self.workflow, self.task, self.step_name)
        return bind_or_mismatch(self.config, self.step_name, self.payload, self.runtime.codec)

    async def _hold(self, mismatch: Mismatch) -> ResultReport:
        """Hand the task back without running or reporting it as the step's failure; tell the engine
        (an extension the public server drops), so that the run shows as stuck."""
        rt = self.runtime
        if self._delivered > 1 and not await still_dispatched(rt.connection.nc, self.task):
            log.info("dropping the held task of step %s of run %s: the run has ended or moved on",
                     rt.step_name, rt.run_info.id)
            return ResultReport.REPORTED  # nothing is left to report: the task is acknowledged
        self.mismatch = mismatch
        self._held.log(self.task, mismatch, hold_delay(self._delivered))
        metrics.step_held(rt.run_info.wf_type, mismatch.reason)
        held = Directive(id=f"held.{self.task.id}.{mismatch.reason}", timestamp=utcnow(),
                         kind=DirectiveKind.step_held, run_info=rt.run_info,
                         msg=StepHeld(step_name=rt.step_name, worker_id=rt.worker_id, reason=mismatch.reason,
                                      detail=mismatch.detail))
        try:
            await rt.publisher.directive(held, budget=rt.io_budget)
        except (Exception, StepInterrupted) as exc:  # the task comes back: it is said again then
            log.info("could not report held step %s of run %s (%s)", rt.step_name, rt.run_info.id, exc)
        return ResultReport.HELD

    async def _call(self, ctx: Context, kwargs: dict[str, Any]) -> Directive:
        config = self.config
        assert config is not None
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
