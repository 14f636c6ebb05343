"""The Client: start workflows, wait for their results, look runs up, read their history, retry ended runs.

    client = Client(await Connection.connect())
    result = await client.run_workflow("ProcessOrder", "order-1", {"order_id": "A-1"})
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

import msgspec
from ulid import ULID

from grctl import settings
from grctl.client.details import RunDetails, read_details
from grctl.client.schedules import ScheduleCommands
from grctl.codec import CodecRegistry, default_codec
from grctl.models.command import CommandKind, DescribeCmd, ListCmd, RetryCmd
from grctl.models.common import RunInfo, RunStatus, utcnow
from grctl.models.errors import WorkflowError, WorkflowNotFoundError
from grctl.models.history import HistoryEvent
from grctl.models.schedule import DeclareResult, RunOutcome, ScheduleState, ScheduleView
from grctl.nats import api_client as api
from grctl.nats import registering, subjects
from grctl.nats.connection import Connection
from grctl.nats.direct import get_last
from grctl.nats.history import follow_history, read_history
from grctl.nats.subjects import check_token
from grctl.workflow.handle import WorkflowHandle, start_run

T = TypeVar("T")


RETRYABLE_STATUSES = frozenset({RunStatus.failed, RunStatus.timed_out, RunStatus.terminated})


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """One run of a bulk retry: the ended run, the new run (None when refused), and why it was refused."""

    run: RunInfo
    retried_as: RunInfo | None
    error: str = ""


def _seconds(timeout: timedelta | float | None) -> float | None:
    if timeout is None:
        return None
    return timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)


class Client:
    """``codec`` converts custom types in inputs, event payloads and results (``grctl.codec``).
    ``retry_for``: how long (seconds) a command is tried again while no engine answers, the engine is
    busy or NATS is reconnecting, before the error is raised (commands are safe to repeat)."""

    def __init__(self, connection: Connection, codec: CodecRegistry | None = None,
                 retry_for: float = settings.API_BUDGET) -> None:
        self._connection = connection
        self._codec = codec or default_codec
        self.retry_for = retry_for
        self.id = f"c_{secrets.token_hex(4)}@{socket.gethostname() or 'localhost'}"

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def codec(self) -> CodecRegistry:
        return self._codec

    async def start_workflow(self, type: str, id: str, input: Any = None,
                             timeout: timedelta | float | None = None,
                             return_type: Any = None, *, start_at: datetime | None = None,
                             start_delay: timedelta | float | None = None) -> WorkflowHandle:
        """Start a run of workflow ``type`` with workflow id ``id``; returns its handle.

        ``timeout`` is the run-level timeout (whole seconds on the wire). ``start_at`` (a time with a
        UTC offset) or ``start_delay`` (from now): the run exists at once, pending, and starts then; it
        can be cancelled or terminated before (ours: the public server starts it at once). Raises
        ``WorkflowAlreadyRunningError`` / ``WorkflowTypeNotRegisteredError`` / ``WorkflowError``.
        """
        if start_at is not None and start_delay is not None:
            raise ValueError("give start_at or start_delay, not both")
        if start_at is not None and start_at.tzinfo is None:
            raise ValueError("start_at needs a time zone (e.g. datetime.now(UTC) + ...)")
        delay = _seconds(start_delay)
        if delay is not None:
            start_at = utcnow() + timedelta(seconds=delay)
        check_token("workflow type", type)
        check_token("workflow id", id)
        await registering.wait_registered(self._connection, type)  # a worker starting on this connection
        seconds = _seconds(timeout)
        run_info = RunInfo(id=str(ULID()), wf_id=id, wf_type=type, created_at=utcnow(),
                           timeout=max(1, int(seconds)) if seconds else None)
        return await start_run(self._connection, run_info, input, self.id, return_type, self.retry_for,
                               self._codec, start_at, subject=subjects.api_typed(type, id))

    @overload
    async def run_workflow(self, type: str, id: str, input: Any = None,
                           timeout: timedelta | float | None = None, return_type: None = None) -> Any: ...

    @overload
    async def run_workflow(self, type: str, id: str, input: Any = None,
                           timeout: timedelta | float | None = None, *, return_type: type[T]) -> T: ...

    async def run_workflow(self, type: str, id: str, input: Any = None,
                           timeout: timedelta | float | None = None, return_type: Any = None) -> Any:
        """Start a run and wait for its result; ``TimeoutError`` after ``timeout``, ``WorkflowError`` if
        it fails."""
        handle = await self.start_workflow(type, id, input, timeout, return_type)
        try:
            return await handle.result(timeout=_seconds(timeout))
        finally:
            await handle.close()

    async def describe(self, wf_id: str) -> RunInfo:
        """RunInfo of the latest run of ``wf_id``; ``WorkflowNotFoundError`` if there is none."""
        return (await self._describe(wf_id)).response.run_info()

    async def describe_run(self, wf_id: str, run_id: str | None = None) -> RunDetails:
        """The latest run of ``wf_id`` (or its run ``run_id``) as an operator looks at it: its info
        (with ``stuck`` when a code mismatch holds it), result or error, and the step it is at or ended
        in. ``WorkflowNotFoundError`` if there is no such run."""
        info = await self.describe(wf_id)
        if run_id is not None and run_id != info.id:
            check_token("run id", run_id)
            stored = await get_last(self._connection.nc, subjects.any_run_info(wf_id, run_id))
            if stored is None:
                raise WorkflowNotFoundError(f"workflow {wf_id!r} has no run {run_id!r}")
            info = msgspec.msgpack.decode(stored.data, type=RunInfo)
        return await read_details(self._connection.nc, info)

    async def _describe(self, wf_id: str) -> api.Reply:
        check_token("workflow id", wf_id)
        return await api.call(self._connection, wf_id, CommandKind.run_describe, DescribeCmd(wf_id=wf_id),
                              self.id, budget=self.retry_for, subject=subjects.api_describe(wf_id))

    async def list_runs(self, status: RunStatus | str | Iterable[RunStatus | str] | None = None,
                        type: str | None = None, since: datetime | timedelta | None = None,
                        limit: int = settings.LIST_LIMIT, stuck: bool = False) -> list[RunInfo]:
        """Stored runs, newest first: with one of the statuses given, of workflow type ``type``,
        created after ``since`` (a time, or a duration back from now); at most ``limit`` (up to 1000);
        ``stuck``: only runs held by a mismatch between code and run (``RunInfo.stuck``).
        Finished runs are listed until the engine's retention removes them."""
        wanted = [status] if isinstance(status, str) else list(status or [])
        statuses = [str(RunStatus(s)) for s in wanted]  # ValueError for an unknown status
        if isinstance(since, timedelta):
            since = utcnow() - since
        reply = await api.call(self._connection, "", CommandKind.run_list,
                               ListCmd(statuses=statuses, wf_type=type or "", since=since, limit=limit,
                                       stuck=stuck),
                               self.id, budget=self.retry_for, subject=subjects.API_RUNS)
        return msgspec.convert(reply.response.payload or [], list[RunInfo])

    async def retry_run(self, wf_id: str, run_id: str | None = None, reason: str = "") -> RunInfo:
        """Resume an ended run on the code the workers have now; returns the new run's ``RunInfo``.

        The retry is a new run of the same workflow id (``retry_of`` names the ended run, whose
        ``retried_as`` names the new one). It starts at the step the ended run failed, timed out or was
        terminated in, with that run's input and its store as it was when that step started.
        ``run_id``: the run to retry (default: the latest run of ``wf_id``; only the latest can be).
        Raises ``WorkflowNotRetryableError`` when the run has not ended as failed, timed out or
        terminated (or is not the latest), ``WorkflowAlreadyRunningError`` when it was already retried
        (of two concurrent retries, one resumes the run), ``WorkflowNotFoundError``.
        ``get_workflow_handle(wf_id)`` then waits for the new run."""
        check_token("workflow id", wf_id)
        if run_id is not None:
            check_token("run id", run_id)
        reply = await api.call(self._connection, wf_id, CommandKind.run_retry,
                               RetryCmd(wf_id=wf_id, run_id=run_id or "", reason=reason), self.id,
                               budget=self.retry_for)
        return reply.response.run_info()

    async def retry_runs(self, status: RunStatus | str | Iterable[RunStatus | str] | None = None,
                         type: str | None = None, since: datetime | timedelta | None = None,
                         limit: int = settings.LIST_LIMIT) -> list[RetryOutcome]:
        """``retry_run`` for every run ``list_runs`` finds (default statuses: failed, timed out,
        terminated) that is the latest of its workflow id and not yet retried; one outcome per run
        tried, in the listing's order (newest first)."""
        wanted = status if status is not None else sorted(RETRYABLE_STATUSES)
        outcomes: list[RetryOutcome] = []
        for run in await self.list_runs(wanted, type, since, limit):
            if run.retried_as:
                continue
            try:
                if (await self.describe(run.wf_id)).id != run.id:
                    continue  # a newer run of the id exists: this one cannot be retried, nor need be
                outcomes.append(RetryOutcome(run, await self.retry_run(run.wf_id, run.id)))
            except WorkflowError as exc:
                outcomes.append(RetryOutcome(run, None, str(exc)))
        return outcomes

    async def get_workflow_handle(self, wf_id: str | None = None, *,
                                  wfid: str | None = None) -> WorkflowHandle:
        """A handle on the latest run of ``wf_id``, listening for its outcome; its future resolves at
        once if the run has ended. ``wfid=`` is the public SDK's keyword for the same."""
        wanted = wf_id if wfid is None else wfid
        if wanted is None or (wf_id is not None and wfid is not None):
            raise TypeError("get_workflow_handle() takes one workflow id (wf_id, or wfid)")
        reply = await self._describe(wanted)
        handle = WorkflowHandle(reply.response.run_info(), self._connection, self.id, codec=self._codec,
                                notifies=reply.notifies, budget=self.retry_for)
        await handle.watch()
        return handle

    async def get_handle(self, workflow_id: str) -> WorkflowHandle:
        """The same as ``get_workflow_handle`` (the documentation's name and keyword)."""
        return await self.get_workflow_handle(workflow_id)

    async def get_history(self, wf_id: str, run_id: str | None = None) -> list[HistoryEvent]:
        """Every history event of a run (default: the latest run of ``wf_id``), in order."""
        run_id = await self._run_id(wf_id, run_id)
        return await read_history(self._connection.nc, wf_id, run_id)

    async def _run_id(self, wf_id: str, run_id: str | None) -> str:
        """``run_id`` when given (both names checked), else the latest run's id."""
        check_token("workflow id", wf_id)
        if run_id is None:
            return (await self.describe(wf_id)).id
        check_token("run id", run_id)
        return run_id

    async def follow_history(self, wf_id: str,
                             run_id: str | None = None) -> AsyncGenerator[HistoryEvent, None]:
        """Like ``get_history``, then every new event as it is written, ending after the run's terminal
        event. Use ``async with contextlib.aclosing(client.follow_history(...)) as events`` when you may
        stop early."""
        run_id = await self._run_id(wf_id, run_id)
        async with contextlib.aclosing(follow_history(self._connection, wf_id, run_id)) as events:
            async for event in events:
                yield event

    # --- schedules (ours: declared in grctld's grctl.yaml, kept by the engine) -------------------------

    def _schedules(self) -> ScheduleCommands:
        return ScheduleCommands(self._connection, self.id, self.retry_for)

    async def list_schedules(self) -> list[ScheduleView]:
        """Every schedule in force: its definition and state (``view.state``: paused, last tick, last
        run's workflow id, counts of fired, skipped and missed ticks, a conflict between hosts), its next
        three fire times (``view.next_fires``, UTC; none while paused) and its last run's status."""
        return await self._schedules().all()

    async def trigger_schedule(self, schedule_id: str) -> RunOutcome:
        """Start the schedule's workflow now (workflow id ``{schedule_id}@{now}``), under its overlap
        policy: ``outcome.action`` is ``started``, ``skipped`` or ``buffered`` (``exists`` when this
        second's tick has its run already). ``WorkflowError`` (code 4008) when no such schedule is in
        force."""
        return await self._schedules().trigger(schedule_id)

    async def pause_schedule(self, schedule_id: str, note: str = "") -> ScheduleState:
        """Stop firing the schedule until ``resume_schedule`` (kept across reloads and restarts);
        ``note`` says why, in ``list_schedules``. Runs already started go on."""
        return await self._schedules().pause(schedule_id, note)

    async def resume_schedule(self, schedule_id: str) -> ScheduleState:
        """Fire the schedule again from its next tick; the ticks that fell while it was paused are not
        run (``backfill_schedule`` runs them). Refused when the file itself says ``paused: true``."""
        return await self._schedules().resume(schedule_id)

    async def backfill_schedule(self, schedule_id: str, start: datetime,
                                end: datetime) -> list[RunOutcome]:
        """Start the run of every tick from ``start`` to ``end`` (both included, at most 1000), whatever
        the overlap policy; a tick whose run exists keeps it (one run per tick)."""
        return await self._schedules().backfill(schedule_id, start, end)

    async def withdraw_schedules(self, declarer: str) -> DeclareResult:
        """Withdraw every schedule that ``declarer`` declared, as its grctld would with no schedules in
        its file: for a host that is gone for good (``declared_by`` in ``list_schedules`` names
        declarers: host name and file path). A schedule no other host declares is removed.
        ``WorkflowError`` (code 4008) when ``declarer`` declares nothing."""
        return await self._schedules().withdraw(declarer)
