"""From a worker-task message to a finished step, with one ack decision per outcome.

- undecodable or not a start/step/event task → logged and terminated (never redelivered);
- workflow type not served here → NAK (another worker may serve it);
- a redelivery of a dispatch that is still running here (its in-progress acks were lost, e.g. while
  NATS restarted) → not run twice: the running step settles the newest delivery when it ends;
- the next dispatch of a run whose previous step is still finishing here → waits for it (never dropped);
- step result published → ACK; not reported (publishing failed, or the step could not talk to NATS)
  → NAK with a delay (the step is replayed);
- held (this worker's code cannot run the task: ``worker.hold``) → NAK with a delay that grows with
  each delivery, so that a worker with fitting code takes it;
- terminated by the engine → ACK; cancelled by shutdown → NAK (another worker takes it at once);
- another delivery's execution claimed the step (``claim.py``) → nothing: that execution settles it.

The pull loop keeps every held message alive with in-progress acks well inside the consumer's ack wait.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg

from grctl import settings
from grctl.codec import CodecRegistry, default_codec
from grctl.models.directive import Directive, DirectiveKind, decode_directive
from grctl.models.history import HistoryEvent, dispatch_ended
from grctl.nats.connection import Connection
from grctl.nats.history import read_history
from grctl.nats.pull import ACK, NAK, TERM, Decision, nak
from grctl.nats.retry import is_transient, retrying
from grctl.ops import metrics
from grctl.worker.hold import HeldRuns, hold_delay
from grctl.worker.publisher import Publisher
from grctl.worker.runner import ResultReport, StepRunner
from grctl.workflow import Workflow

log = logging.getLogger("grctl.worker")

TASK_KINDS = frozenset({DirectiveKind.start, DirectiveKind.step, DirectiveKind.event})


@dataclass
class _Run:
    directive_id: str
    task: asyncio.Task[ResultReport]
    msg: Msg  # the newest delivery of the task: the one the server will take an ack for
    terminated: bool = False


def _stream_seq(msg: Msg) -> int:
    try:
        return int(msg.metadata.sequence.stream or 0)
    except (ValueError, TypeError, AttributeError):
        return 0


def _num_delivered(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered or 1)
    except (ValueError, TypeError, AttributeError):
        return 1


class Dispatcher:
    def __init__(self, workflows: dict[str, Workflow], connection: Connection, publisher: Publisher,
                 workflow_logger: logging.Logger, codec: CodecRegistry = default_codec) -> None:
        self._workflows = workflows
        self._codec = codec
        self._connection = connection
        self._publisher = publisher
        self._workflow_logger = workflow_logger
        self._runs: dict[str, _Run] = {}
        self._held = HeldRuns()

    @property
    def running_runs(self) -> list[str]:
        return list(self._runs)

    def terminate_run(self, run_id: str) -> bool:
        """Cancel the step of ``run_id`` running here; True if there was one."""
        run = self._runs.get(run_id)
        if run is None or run.task.done():
            return False
        run.terminated = True
        run.task.cancel()
        return True

    def cancel_all(self) -> int:
        """Cancel every running step (shutdown); their tasks are NAKed for another worker."""
        count = 0
        for run in list(self._runs.values()):
            if not run.task.done():
                run.task.cancel()
                count += 1
        return count

    # --- one message ---------------------------------------------------------------------------------

    async def handle(self, msg: Msg) -> Decision | None:
        task = self._decode(msg)
        if task is None:
            return TERM
        workflow = self._workflows.get(task.run_info.wf_type)
        if workflow is None:
            log.warning("task for workflow type %r, not served by this worker: NAK", task.run_info.wf_type)
            return nak(settings.DISPATCH_RETRY_DELAY)
        task.attempt = max(task.attempt, _num_delivered(msg) - 1)
        metrics.delivered(workflow.workflow_type, _num_delivered(msg))
        run_id = task.run_info.id
        while (current := self._runs.get(run_id)) is not None:
            if current.directive_id == task.id:
                log.info("task %s of run %s was redelivered while running here: it settles when the step "
                         "ends", task.id, run_id)
                current.msg = msg
                await asyncio.wait({current.task})
                return self._decision(current, task) if current.msg is msg else None
            await asyncio.wait({current.task})  # the previous step of this run is still finishing
        # No await between the check above and the claim below: one runner per run at a time.
        runner = asyncio.create_task(self._execute(workflow, task, _num_delivered(msg), _stream_seq(msg)),
                                     name=f"grctl-run-{run_id}")
        run = _Run(task.id, runner, msg)
        self._runs[run_id] = run
        try:
            await asyncio.wait({run.task})
        except asyncio.CancelledError:
            run.task.cancel()
            raise
        finally:
            if self._runs.get(run_id) is run:
                del self._runs[run_id]
        # A newer delivery of this task arrived meanwhile: its handler settles that one.
        return self._decision(run, task) if run.msg is msg else None

    async def _execute(self, workflow: Workflow, task: Directive, delivered: int,
                       task_seq: int = 0) -> ResultReport:
        """Read what the step's earlier executions recorded (a redelivery), then run the step.

        A first delivery reads nothing: a nats-server that crashed can come back having lost its count
        of deliveries, but then the step's claim (``claim.py``) is already taken, and its first live
        operation reads the history before anything runs again."""
        history: list[HistoryEvent] = []
        ri = task.run_info
        if delivered > 1 and ri.history_seq_id > 0:
            try:
                events = await retrying(
                    lambda: read_history(self._connection.nc, ri.wf_id, ri.id, ri.history_seq_id),
                    settings.HISTORY_READ_BUDGET, what=f"reading the history of run {ri.id}")
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("cannot read the history of run %s (%s); the task will be delivered again",
                            ri.id, exc)
                return ResultReport.NOT_REPORTED
            if dispatch_ended(events, task_seq):
                log.info("dropping the %s task %s of run %s, delivered again after its dispatch: the run "
                         "has ended or moved on", task.kind, task.id, ri.id)
                return ResultReport.ENDED
            history = [e for e in events if e.operation_id]
        runner = StepRunner(workflow, task, history, self._connection, self._publisher, self._workflow_logger,
                            self._codec, self._held, delivered, task_seq)
        outcome = await runner.run()
        if outcome is not ResultReport.HELD:
            self._held.forget(ri.id)
        return outcome

    def _decode(self, msg: Msg) -> Directive | None:
        try:
            task = decode_directive(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            log.error("dropping an undecodable worker task on %s: %s", msg.subject, exc)
            return None
        if task.kind not in TASK_KINDS:
            log.error("dropping a worker task of kind %s on %s (only start, step and event are tasks)",
                      task.kind, msg.subject)
            return None
        return task

    def _decision(self, run: _Run, task: Directive) -> Decision | None:
        where = f"{task.kind} task {task.id} of run {task.run_info.id}"
        if run.task.cancelled():
            if run.terminated:
                log.info("%s terminated", where)
                return ACK
            log.info("%s cancelled by shutdown: NAK for another worker", where)
            return NAK
        exc = run.task.exception()
        if exc is not None:
            log.error("%s failed before reporting (%s: %s): NAK", where, type(exc).__name__, exc,
                      exc_info=exc)
            return nak(settings.DISPATCH_RETRY_DELAY)
        outcome = run.task.result()
        if outcome in (ResultReport.REPORTED, ResultReport.ENDED):
            return ACK
        if outcome is ResultReport.SUPERSEDED:
            return None
        if outcome is ResultReport.HELD:
            return nak(hold_delay(_num_delivered(run.msg)))
        return nak(settings.DISPATCH_RETRY_DELAY)
