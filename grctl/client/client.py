"""The Client: start workflows, wait for their results, look runs up, read their history.

    client = Client(await Connection.connect())
    result = await client.run_workflow("ProcessOrder", "order-1", {"order_id": "A-1"})
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import Any, TypeVar, overload

from ulid import ULID

from grctl.client import api, registering
from grctl.client.handle import WorkflowHandle
from grctl.client.history import follow_history, read_history
from grctl.client.watch import settle
from grctl.codec import CodecRegistry, default_codec
from grctl.models.command import CommandKind, DescribeCmd, StartCmd
from grctl.models.common import RunInfo, utcnow
from grctl.models.history import HistoryEvent
from grctl.nats.connection import Connection

T = TypeVar("T")


def _seconds(timeout: timedelta | float | None) -> float | None:
    if timeout is None:
        return None
    return timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)


class Client:
    """``codec`` converts custom types in inputs, event payloads and results (``grctl.codec``)."""

    def __init__(self, connection: Connection, codec: CodecRegistry | None = None) -> None:
        self._connection = connection
        self._codec = codec or default_codec
        self.id = f"c_{secrets.token_hex(4)}@{socket.gethostname() or 'localhost'}"

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def codec(self) -> CodecRegistry:
        return self._codec

    async def start_workflow(self, type: str, id: str, input: Any = None,
                             timeout: timedelta | float | None = None,
                             return_type: Any = None) -> WorkflowHandle:
        """Start a run of workflow ``type`` with workflow id ``id``; returns its handle.

        ``timeout`` is the run-level timeout (whole seconds on the wire). Raises
        ``WorkflowAlreadyRunningError`` / ``WorkflowTypeNotRegisteredError`` / ``WorkflowError``.
        """
        api.check_name("workflow type", type)
        api.check_name("workflow id", id)
        await registering.wait_registered(self._connection, type)  # a worker starting on this connection
        seconds = _seconds(timeout)
        run_info = RunInfo(id=str(ULID()), wf_id=id, wf_type=type, created_at=utcnow(),
                           timeout=max(1, int(seconds)) if seconds else None)
        return await self._start(run_info, input, return_type, self.id)

    async def _start(self, run_info: RunInfo, input: Any, return_type: Any,
                     sender_id: str) -> WorkflowHandle:
        handle = WorkflowHandle(run_info, self._connection, sender_id, return_type, self._codec)
        await handle.watcher.watch()  # before the start command, so no event can be missed
        try:
            await api.call(self._connection, run_info.wf_id, CommandKind.run_start,
                           StartCmd(run_info=run_info, input=self._codec.normalize(input)), sender_id)
        except BaseException:
            await handle.discard()
            raise
        return handle

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
        api.check_name("workflow id", wf_id)
        response = await api.call(self._connection, wf_id, CommandKind.run_describe,
                                  DescribeCmd(wf_id=wf_id), self.id)
        return response.run_info()

    async def get_workflow_handle(self, wf_id: str) -> WorkflowHandle:
        """A handle on the latest run of ``wf_id``; its future resolves at once if the run has ended."""
        run_info = await self.describe(wf_id)
        handle = WorkflowHandle(run_info, self._connection, self.id, codec=self._codec)
        if run_info.is_terminal:
            for event in reversed(await read_history(self._connection.nc, wf_id, run_info.id)):
                if settle(handle.watcher.future, event):
                    return handle
        await handle.watcher.watch()
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
        api.check_name("workflow id", wf_id)
        if run_id is None:
            return (await self.describe(wf_id)).id
        api.check_name("run id", run_id)
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
