"""Tasks and retries end to end (C25–C28 of docs/protocol.md#conformance-scenarios): history events and
run outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.sdk import kinds, workers
from ulid import ULID

from grctl.client.client import Client
from grctl.models import Directive
from grctl.models.directive import RetryPolicy
from grctl.models.errors import WorkflowError
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)

CALLS: dict[str, int] = {}

QUICK = {"initial_delay_ms": 1, "backoff_multiplier": 1.0}


def failing(name: str, error: type[BaseException], failures: int, policy: RetryPolicy | None) -> Any:
    async def run() -> str:
        CALLS[name] = CALLS.get(name, 0) + 1
        if CALLS[name] <= failures:
            raise error(MESSAGES.get(name, f"attempt {CALLS[name]}"))
        return "ok"

    run.__name__ = run.__qualname__ = name
    return task(retry_policy=policy)(run)


MESSAGES = {"non_retryable": "not retryable", "wrong_type": "wrong error type",
            "no_policy": "fails immediately"}

TASKS = {
    "retry_then_success": failing("retry_then_success", RuntimeError, 2,
                                  RetryPolicy(max_attempts=3, **QUICK)),
    "exhausted": failing("exhausted", RuntimeError, 99, RetryPolicy(max_attempts=3, **QUICK)),
    "no_policy": failing("no_policy", RuntimeError, 99, None),
    "non_retryable": failing("non_retryable", ValueError, 99,
                             RetryPolicy(max_attempts=3, non_retryable_errors=["ValueError"], **QUICK)),
    "timeout_retried": failing("timeout_retried", TimeoutError, 2,
                               RetryPolicy(max_attempts=3, retryable_errors=["TimeoutError"], **QUICK)),
    "wrong_type": failing("wrong_type", ValueError, 99,
                          RetryPolicy(max_attempts=3, retryable_errors=["TimeoutError"], **QUICK)),
}


@task(retry_policy=RetryPolicy(max_attempts=3, **QUICK))
async def gives_up() -> str:
    CALLS["gives_up"] = CALLS.get("gives_up", 0) + 1
    raise asyncio.CancelledError


wf = Workflow("Tasks")


@wf.start()
async def start(ctx: Context, which: str) -> Directive:
    if which == "cancelled":
        try:
            await gives_up()
        except asyncio.CancelledError:
            return ctx.next.complete("cancelled")
    return ctx.next.complete(await TASKS[which]())


@pytest.fixture
async def setup(engine: Any, connection: Connection, nats_url: str) -> AsyncIterator[Client]:
    CALLS.clear()
    async with workers(nats_url) as start_worker:
        await start_worker(wf)
        yield Client(connection)


async def run(client: Client, which: str) -> tuple[Any, list[str]]:
    wf_id = f"t-{ULID()}"
    try:
        result: Any = await client.run_workflow("Tasks", wf_id, {"which": which}, timeout=10)
    except WorkflowError as exc:
        result = exc
    return result, kinds(await client.get_history(wf_id), "task.")


async def test_c25_retry_then_success(setup: Client) -> None:
    result, task_kinds = await run(setup, "retry_then_success")
    assert result == "ok" and CALLS["retry_then_success"] == 3
    assert task_kinds == ["task.started", "task.attempt_failed", "task.attempt_failed", "task.completed"]


async def test_c26_retries_exhausted(setup: Client) -> None:
    result, task_kinds = await run(setup, "exhausted")
    assert isinstance(result, WorkflowError) and "RuntimeError: attempt 3" in str(result)
    assert CALLS["exhausted"] == 3
    assert task_kinds == ["task.started", "task.attempt_failed", "task.attempt_failed", "task.failed"]


@pytest.mark.parametrize(("which", "calls", "expected"), [
    ("no_policy", 1, "RuntimeError: fails immediately"),
    ("non_retryable", 1, "ValueError: not retryable"),
    ("wrong_type", 1, "ValueError: wrong error type"),
    ("timeout_retried", 3, None),
])
async def test_c27_retry_filters(setup: Client, which: str, calls: int, expected: str | None) -> None:
    result, task_kinds = await run(setup, which)
    assert CALLS[which] == calls
    if expected is None:
        assert result == "ok"
    else:
        assert isinstance(result, WorkflowError) and expected in str(result)
        assert task_kinds == ["task.started", "task.failed"]


async def test_c28_cancelled_task(setup: Client) -> None:
    result, task_kinds = await run(setup, "cancelled")
    assert result == "cancelled" and CALLS["gives_up"] == 1
    assert task_kinds == ["task.started", "task.cancelled"]
