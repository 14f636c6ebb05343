"""A handle on one workflow run: its RunInfo, its outcome future, and the commands that act on it;
and ``start_run``, which starts a run and returns its handle (used by the client and by child starts)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, TypeVar, overload

from grctl import settings
from grctl.codec import CodecRegistry, default_codec
from grctl.models.command import CancelCmd, CommandKind, DelayedStartCmd, EventCmd, StartCmd, TerminateCmd
from grctl.models.common import RunInfo
from grctl.nats import api_client as api
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.outcome import RunWatcher
from grctl.nats.subjects import check_token
from grctl.workflow.future import WorkflowFuture

T = TypeVar("T")


class WorkflowHandle:
    def __init__(self, run_info: RunInfo, connection: Connection, sender_id: str,
                 return_type: Any = None, codec: CodecRegistry | None = None, notifies: bool = True,
                 budget: float = settings.API_BUDGET) -> None:
        self.run_info = run_info
        self._connection = connection
        self._sender_id = sender_id
        self._return_type = return_type
        self._notifies = notifies  # does the engine announce outcomes (else: watch the history)
        self._budget = budget
        self._codec = codec or default_codec
        self._watcher = RunWatcher(connection, run_info.wf_id, run_info.id, run_info.wf_type)
        self._future = WorkflowFuture(run_info, self._watcher)

    def __repr__(self) -> str:
        return f"WorkflowHandle(wf_id={self.run_info.wf_id!r}, run_id={self.run_info.id!r})"

    @property
    def wf_id(self) -> str:
        return self.run_info.wf_id

    @property
    def run_id(self) -> str:
        return self.run_info.id

    @property
    def future(self) -> WorkflowFuture:
        """Resolves with the run's result, or raises ``WorkflowError`` (failed),
        ``WorkflowCancelledError``/``WorkflowTerminatedError`` (also ``asyncio.CancelledError``) or
        ``TimeoutError`` (run-level timeout). See ``grctl.workflow.future``."""
        return self._future

    @property
    def watcher(self) -> RunWatcher:
        return self._watcher

    async def watch(self) -> None:
        """Start listening for the run's outcome (and look at the stored one once)."""
        if self.future.done():
            return
        await self._watcher.watch(check_stored=True)
        if not self._notifies:
            await self._watcher.watch_history()

    async def attach(self) -> None:
        """The public SDK's name for ``watch`` (listening already: nothing to do)."""
        if not self._watcher.watching:
            await self.watch()

    async def query(self, query_name: str) -> Any:
        """Not served yet, as in the public SDK: query handlers can be registered, not called."""
        raise NotImplementedError("WorkflowHandle.query() is not implemented yet")

    async def update(self, update_name: str, data: Any) -> Any:
        """Not served yet, as in the public SDK."""
        raise NotImplementedError("WorkflowHandle.update() is not implemented yet")

    @overload
    async def result(self, timeout: float | None = None, return_type: None = None) -> Any: ...

    @overload
    async def result(self, timeout: float | None = None, *, return_type: type[T]) -> T: ...

    async def result(self, timeout: float | None = None, return_type: Any = None) -> Any:
        """Wait for the outcome (``timeout`` seconds at most: ``TimeoutError``); convert the result to
        ``return_type`` (or the type given at start)."""
        if not self._watcher.watching:
            await self.watch()
        raw = await asyncio.wait_for(asyncio.shield(self._watcher.future), timeout)
        target = return_type or self._return_type
        return self._codec.convert(raw, target) if target is not None else raw

    async def send(self, event_name: str, payload: Any = None) -> None:
        """Send an event to the workflow (its latest run); raises on an API error."""
        check_token("event name", event_name)
        value = self._codec.normalize(payload)
        await api.call(self._connection, self.wf_id, CommandKind.run_event,
                       EventCmd(wf_id=self.wf_id, event_name=event_name, payload=value), self._sender_id,
                       budget=self._budget, subject=subjects.api_typed(self.run_info.wf_type, self.wf_id))

    async def cancel(self, reason: str | None = None) -> None:
        """Ask the run to cancel (deferred until the running step ends); raises on an API error."""
        await api.call(self._connection, self.wf_id, CommandKind.run_cancel,
                       CancelCmd(wf_id=self.wf_id, reason=reason), self._sender_id, budget=self._budget)

    async def terminate(self, reason: str | None = None) -> None:
        """End the run now, interrupting its step; raises on an API error."""
        await api.call(self._connection, self.wf_id, CommandKind.run_terminate,
                       TerminateCmd(wf_id=self.wf_id, reason=reason), self._sender_id, budget=self._budget)

    async def close(self) -> None:
        """Stop watching the run (the future stays as it is)."""
        await self._watcher.close()

    async def discard(self) -> None:
        await self._watcher.discard()


async def start_run(connection: Connection, run_info: RunInfo, input: Any, sender_id: str,
                    return_type: Any = None, budget: float = settings.API_BUDGET,
                    codec: CodecRegistry | None = None, start_at: datetime | None = None,
                    subject: str = "") -> WorkflowHandle:
    """Start the run described by ``run_info`` and return its handle, already listening: it subscribes
    to the run's outcome before sending the start, so no outcome can be missed. The start is retried
    with the same run id (a retry never makes a second run). ``start_at`` (ours): the run is created
    now and starts then. ``subject``: another API subject than the workflow id's (a client's start goes
    to ``grctl_api.typed.{wf_type}.{wf_id}``, a worker's child start to
    ``grctl_api.child.{wf_type}.{wf_id}.{run_id}``, which names the parent: the run starting it)."""
    handle = WorkflowHandle(run_info, connection, sender_id, return_type, codec=codec, budget=budget)
    await handle.watcher.watch(check_stored=False)
    try:
        value = handle._codec.normalize(input)
        cmd = (StartCmd(run_info=run_info, input=value) if start_at is None
               else DelayedStartCmd(run_info=run_info, input=value, start_at=start_at))
        reply = await api.call(connection, run_info.wf_id, CommandKind.run_start, cmd, sender_id,
                               budget=budget, subject=subject)
        if not reply.notifies:
            handle._notifies = False
            await handle.watcher.watch_history()
    except BaseException:
        await handle.discard()
        raise
    return handle
