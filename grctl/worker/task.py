"""``@task``: a side effect whose outcome is recorded, so a re-executed step does not repeat it.

    @task
    async def charge(order_id: str) -> str: ...

    @task(retry_policy=RetryPolicy(max_attempts=3))
    async def flaky() -> None: ...

Inside a handler, a task call gets an operation id (docs/protocol.md#replay-and-operation-ids). If the
step's history already holds its outcome, that outcome is returned (or raised) without running the
function; otherwise the function runs with the retry policy and publishes task.started /
task.attempt_failed / task.completed / task.failed / task.cancelled (docs/protocol.md#tasks-and-retries).
Outside a worker the function simply runs.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import typing
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from grctl.models.common import utcnow
from grctl.models.directive import RetryPolicy
from grctl.models.history import (
    HistoryKind,
    TaskAttemptFailed,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
)
from grctl.ops import metrics
from grctl.worker.next import error_details
from grctl.worker.retry import backoff_delay_ms, max_attempts, rebuild_error, should_retry
from grctl.worker.runtime import StepRuntime, current_runtime

P = ParamSpec("P")
R = TypeVar("R")

OUTCOME_KINDS = frozenset({HistoryKind.task_completed, HistoryKind.task_failed, HistoryKind.task_cancelled})


@overload
def task(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...


@overload
def task(*, retry_policy: RetryPolicy | None = None) -> Callable[
    [Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]: ...


def task(fn: Callable[..., Any] | None = None, /, *, retry_policy: RetryPolicy | None = None) -> Any:
    """Mark an async function as a task, used bare (``@task``) or with a retry policy."""

    def decorate(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            runtime = current_runtime()
            if runtime is None:
                return await func(*args, **kwargs)
            return await _TaskCall(runtime, func, signature, retry_policy, args, kwargs).run()

        wrapper.retry_policy = retry_policy  # type: ignore[attr-defined]
        return wrapper

    return decorate(fn) if fn is not None else decorate


def _ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


class _TaskCall:
    def __init__(self, runtime: StepRuntime, fn: Callable[..., Awaitable[Any]],
                 signature: inspect.Signature, policy: RetryPolicy | None,
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.rt = runtime
        self.fn = fn
        self.policy = policy
        self.args = args
        self.kwargs = kwargs
        self.name: str = fn.__name__
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        self.arg_map = {k: runtime.codec.to_builtins(v) for k, v in bound.arguments.items()}
        self.op = runtime.next_operation_id(self.name, self.arg_map)

    async def run(self) -> Any:
        recorded = await self.rt.replayed(self.op, OUTCOME_KINDS)
        if recorded is not None:
            return self._replay(recorded.kind, recorded.msg)
        return await self._execute()

    def _replay(self, kind: HistoryKind, msg: Any) -> Any:
        if kind == HistoryKind.task_completed:
            raw = msg.output.get("result")
            try:
                return_type = typing.get_type_hints(self.fn).get("return")
            except (NameError, TypeError):  # an annotation that cannot be resolved: keep the raw value
                return_type = None
            return self.rt.codec.convert(raw, return_type) if return_type not in (None, type(None)) else raw
        if kind == HistoryKind.task_failed:
            raise rebuild_error(msg.error)
        raise asyncio.CancelledError(f"task {self.name} was cancelled")

    async def _publish(self, kind: HistoryKind, msg: object, timestamp: Any = None, attempt: int = 0) -> None:
        await self.rt.record(kind, msg, self.op, timestamp, attempt=attempt)

    async def _execute(self) -> Any:
        step = self.rt.step_name
        attempt = self.rt.cursor.count(HistoryKind.task_attempt_failed, self.op)
        started = time.monotonic()
        await self._publish(HistoryKind.task_started, TaskStarted(
            task_id=self.op, task_name=self.name, args=self.arg_map, step_name=step), utcnow())
        while True:
            attempt += 1
            attempt_start = time.monotonic()
            try:
                result = await self.fn(*self.args, **self.kwargs)
            except asyncio.CancelledError:
                metrics.task_attempt(self.rt.run_info.wf_type, "cancelled", final=True)
                await self._publish(HistoryKind.task_cancelled, TaskCancelled(
                    task_id=self.op, task_name=self.name, step_name=step,
                    duration_ms=_ms_since(attempt_start)))
                raise
            except Exception as exc:
                duration = _ms_since(attempt_start)
                retry = should_retry(exc, self.policy, attempt)
                metrics.task_attempt(self.rt.run_info.wf_type, "failed", final=not retry)
                if retry:
                    assert self.policy is not None
                    delay = backoff_delay_ms(self.policy, attempt)
                    await self._publish(HistoryKind.task_attempt_failed, TaskAttemptFailed(
                        task_id=self.op, task_name=self.name, step_name=step, attempt=attempt,
                        max_attempts=max_attempts(self.policy), error=error_details(exc),
                        next_retry_delay_ms=delay, duration_ms=duration), attempt=attempt)
                    await asyncio.sleep(delay / 1000)
                    continue
                await self._publish(HistoryKind.task_failed, TaskFailed(
                    task_id=self.op, task_name=self.name, step_name=step, error=error_details(exc),
                    duration_ms=duration))
                raise
            metrics.task_attempt(self.rt.run_info.wf_type, "ok", final=True)
            await self._publish(HistoryKind.task_completed, TaskCompleted(
                task_id=self.op, task_name=self.name, output={"result": self.rt.codec.to_builtins(result)},
                step_name=step, duration_ms=_ms_since(started)))
            return result
