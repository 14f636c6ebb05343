"""``ctx.next``: the builders of a step's result (docs/protocol.md#the-worker).

Each builder returns a ``step_result`` directive whose id and timestamp are fixed at the call; the
pending store writes made so far travel in it as ``kv_updates``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from ulid import ULID

from grctl.models.common import ErrorDetails, utcnow
from grctl.models.directive import (
    Complete,
    Directive,
    DirectiveKind,
    Fail,
    FailStep,
    Step,
    StepResult,
    Wait,
)
from grctl.workflow import timeout_ms, to_timedelta

if TYPE_CHECKING:
    from grctl.worker.runtime import StepRuntime


def error_details(exc: BaseException, with_qualified_type: bool = True) -> ErrorDetails:
    """ErrorDetails of an exception: class name, message, formatted traceback, ``module.QualName``."""
    cls = type(exc)
    return ErrorDetails(
        type=cls.__name__,
        message=str(exc),
        stack_trace="".join(traceback.format_exception(exc)),
        qualified_type=f"{cls.__module__}.{cls.__qualname__}" if with_qualified_type else "",
    )


def _name_of(fn: Callable[..., Any] | str, what: str) -> str:
    if isinstance(fn, str):
        return fn
    name = getattr(fn, "__name__", None)
    if not name:
        raise ValueError(f"{what} must be a named handler function")
    return name


class NextBuilder:
    def __init__(self, runtime: StepRuntime) -> None:
        self._rt = runtime

    def _result(self, kind: DirectiveKind, msg: msgspec.Struct) -> Directive:
        rt = self._rt
        task = rt.task
        result = StepResult(
            processed_msg_kind=str(task.kind),
            processed_msg=task.msg,
            worker_id=rt.worker_id,
            kv_updates=rt.store.take_pending(),
            next_msg_kind=str(kind),
            next_msg=msg,
        )
        return Directive(id=str(ULID()), timestamp=utcnow(), kind=DirectiveKind.step_result,
                         run_info=rt.run_info, msg=result)

    def step(self, step_fn: Callable[..., Any] | str) -> Directive:
        """Continue with the step handler ``step_fn`` (its configured timeout goes with it)."""
        name = _name_of(step_fn, "the next step")
        return self._result(DirectiveKind.step,
                            Step(step_name=name, timeout_ms=self._rt.workflow.step_timeout_ms(name)))

    def wait(self, timeout: timedelta | float | None = None,
             on_timeout: Callable[..., Any] | str | None = None) -> Directive:
        """Park the run until an event arrives; after ``timeout``, run ``on_timeout`` (or fail)."""
        name = _name_of(on_timeout, "on_timeout") if on_timeout is not None else ""
        return self._result(DirectiveKind.wait,
                            Wait(timeout_ms=timeout_ms(to_timedelta(timeout)), timeout_step_name=name))

    def complete(self, result: Any = None) -> Directive:
        """Finish the run with ``result``."""
        return self._result(DirectiveKind.complete, Complete(result=self._rt.codec.normalize(result)))

    def fail(self, error: ErrorDetails | BaseException | str) -> Directive:
        """Fail the run with ``error``."""
        if isinstance(error, BaseException):
            error = error_details(error)
        elif isinstance(error, str):
            error = ErrorDetails(type="WorkflowError", message=error)
        return self._result(DirectiveKind.fail, Fail(error=error))

    def fail_step(self, step_name: str, error: ErrorDetails) -> Directive:
        """The result published when a handler raised (not for handler code)."""
        return self._result(DirectiveKind.fail_step, FailStep(step_name=step_name, error=error))
