"""Workflow definitions (``Workflow`` and its handler decorators), free of I/O.

``WorkflowHandle`` and ``WorkflowFuture`` belong to the client; they are reachable here too (the public
SDK's paths) but imported only when asked for, so defining a workflow never loads the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from grctl.models.directive import Directive
from grctl.workflow.workflow import (
    DEFAULT_STEP_TIMEOUT,
    Handler,
    HandlerConfig,
    HandlerSpec,
    Timeout,
    Workflow,
    inspect_handler,
    timeout_ms,
    to_timedelta,
)

if TYPE_CHECKING:
    from grctl.workflow.future import WorkflowFuture
    from grctl.workflow.handle import WorkflowHandle

_LAZY = {"WorkflowHandle": "grctl.workflow.handle", "WorkflowFuture": "grctl.workflow.future"}

__all__ = [
    "DEFAULT_STEP_TIMEOUT",
    "Directive",
    "Handler",
    "HandlerConfig",
    "HandlerSpec",
    "Timeout",
    "Workflow",
    "WorkflowFuture",
    "WorkflowHandle",
    "inspect_handler",
    "timeout_ms",
    "to_timedelta",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
