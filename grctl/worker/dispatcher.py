"""From a worker-task message to a finished step, with one ack decision per outcome (§5.6.2).

- undecodable or not a start/step/event task → logged and terminated (never redelivered);
- workflow type not served here → NAK (another worker may serve it);
- a redelivery of a dispatch that is still running here (its in-progress acks were lost, e.g. while
  NATS restarted) → not run twice: the running step settles the newest delivery when it ends;
- the next dispatch of a run whose previous step is still finishing here → waits for it (never dropped);
- step result published → ACK; publishing failed → NAK with a delay (the step is replayed);
- terminated by the engine → ACK; cancelled by shutdown → NAK (another worker takes it at once).

While a task is held, it is kept alive with in-progress acks well inside the consumer's ack wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from nats.aio.msg import Msg

from grctl.client.history import read_history
from grctl.codec import CodecRegistry, default_codec
from grctl.models.directive import Directive, DirectiveKind, decode_directive
from grctl.models.history import HistoryEvent
from grctl.nats.connection import Connection
from grctl.worker.publisher import Publisher
from grctl.worker.runner import Outcome, StepRunner
from grctl.workflow import Workflow

log = logging.getLogger("grctl.worker")

TASK_KINDS = frozenset({DirectiveKind.start, DirectiveKind.step, DirectiveKind.event})
RETRY_DELAY = 1.0


@dataclass
class _Run:
    directive_id: str
    task: asyncio.Task[Outcome]
    msg: Msg  # the newest delivery of the task: the one the server will take an ack for
    terminated: bool = False


def _num_delivered(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered or 1)
    except Exception:
        return 1


async def _settle(msg: Msg, action: str, delay: float | None = None) -> None:
    try:
        if action == "ack":
            await msg.ack()
        elif action == "term":
            await msg.term()
        else:
            await msg.nak(delay=delay)
    except Exception as exc:
        log.warning("could not %s task message %s: %s", action, msg.subject, exc)


class Dispatcher:
    def __init__(self, workflows: dict[str, Workflow], connection: Connection, publisher: Publisher,
                 workflow_logger: logging.Logger, heartbeat_interval: float,
                 codec: CodecRegistry = default_codec) -> None:
        self._workflows = workflows
        self._codec = codec
        self._connection = connection
        self._publisher = publisher
        self._workflow_logger = workflow_logger
        self._heartbeat_interval = heartbeat_interval
        self._runs: dict[str, _Run] = {}
        self._held: dict[int, Msg] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name="grctl-heartbeat")

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            for msg in list(self._held.values()):
                try:
                    await msg.in_progress()
                except Exception:
                    pass

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

    async def handle(self, msg: Msg) -> None:
        self._held[id(msg)] = msg
        try:
            await self._handle(msg)
        finally:
            self._held.pop(id(msg), None)

    async def _handle(self, msg: Msg) -> None:
        task = self._decode(msg)
        if task is None:
            await _settle(msg, "term")
            return
        workflow = self._workflows.get(task.run_info.wf_type)
        if workflow is None:
            log.warning("task for workflow type %r, not served by this worker: NAK", task.run_info.wf_type)
            await _settle(msg, "nak", RETRY_DELAY)
            return
        task.attempt = max(task.attempt, _num_delivered(msg) - 1)
        run_id = task.run_info.id
        while (current := self._runs.get(run_id)) is not None:
            if current.directive_id == task.id:
                log.info("task %s of run %s was redelivered while running here: it settles when the step "
                         "ends", task.id, run_id)
                current.msg = msg  # kept alive by the heartbeat while this handler holds it
                await asyncio.wait({current.task})
                return
            await asyncio.wait({current.task})  # the previous step of this run is still finishing
        # No await between the check above and the claim below: one runner per run at a time.
        runner = asyncio.create_task(self._execute(workflow, task), name=f"grctl-run-{run_id}")
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
        await self._finish(run.msg, run, task)

    async def _execute(self, workflow: Workflow, task: Directive) -> Outcome:
        """Read the step's history when this is a redelivery, then run the step."""
        history: list[HistoryEvent] = []
        ri = task.run_info
        if task.attempt > 0 and ri.history_seq_id > 0:
            events = await read_history(self._connection.nc, ri.wf_id, ri.id, ri.history_seq_id)
            history = [e for e in events if e.operation_id]
        runner = StepRunner(workflow, task, history, self._connection, self._publisher, self._workflow_logger,
                            self._codec)
        return await runner.run()

    def _decode(self, msg: Msg) -> Directive | None:
        try:
            task = decode_directive(msg.data)
        except Exception as exc:
            log.error("dropping an undecodable worker task on %s: %s", msg.subject, exc)
            return None
        if task.kind not in TASK_KINDS:
            log.error("dropping a worker task of kind %s on %s (only start, step and event are tasks)",
                      task.kind, msg.subject)
            return None
        return task

    async def _finish(self, msg: Msg, run: _Run, task: Directive) -> None:
        where = f"{task.kind} task {task.id} of run {task.run_info.id}"
        if run.task.cancelled():
            if run.terminated:
                log.info("%s terminated", where)
                await _settle(msg, "ack")
            else:
                log.info("%s cancelled by shutdown: NAK for another worker", where)
                await _settle(msg, "nak")
            return
        exc = run.task.exception()
        if exc is not None:
            log.error("%s failed before reporting (%s: %s): NAK", where, type(exc).__name__, exc,
                      exc_info=exc)
            await _settle(msg, "nak", RETRY_DELAY)
        elif run.task.result() is Outcome.REPORTED:
            await _settle(msg, "ack")
        else:
            await _settle(msg, "nak", RETRY_DELAY)
