"""In-process SDK helpers for integration tests: start Workers on their own connections, read runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from grctl.client.client import Client
from grctl.models.history import HistoryEvent
from grctl.nats.connection import Connection
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

StartWorker = Callable[..., Awaitable[Worker]]


@asynccontextmanager
async def workers(nats_url: str) -> AsyncIterator[StartWorker]:
    """Yields ``start(*workflows, **worker_options) -> Worker`` (ready); stops them all at the end."""
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(*workflows: Workflow, **options: Any) -> Worker:
        connection = await Connection.connect([nats_url])
        worker = Worker(list(workflows), connection, **options)
        runner = asyncio.create_task(worker.start())
        started.append((worker, runner))
        await worker.wait_ready(15)
        return worker

    try:
        yield start
    finally:
        for worker, runner in started:
            await worker.stop(shutdown_timeout=1)
            await asyncio.gather(runner, return_exceptions=True)


def kinds(history: list[HistoryEvent], prefix: str = "") -> list[str]:
    return [str(e.kind) for e in history if str(e.kind).startswith(prefix)]


def step_kinds(history: list[HistoryEvent]) -> list[tuple[str, str]]:
    return [(str(e.kind), e.msg.step_name) for e in history if str(e.kind).startswith("step.")]


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0,
                   interval: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def wait_history(client: Client, wf_id: str, kind: str, timeout: float = 10.0,
                       step: str | None = None) -> list[HistoryEvent]:
    """The run's history once it holds an event of ``kind`` (for step ``step`` when given)."""
    found: list[HistoryEvent] = []

    async def has() -> bool:
        nonlocal found
        try:
            found = await client.get_history(wf_id)
        except Exception:
            return False
        return any(str(e.kind) == kind and (step is None or getattr(e.msg, "step_name", None) == step)
                   for e in found)

    await wait_for(has, timeout)
    return found
