"""What an error reply of the engine API means, in one sentence: shared by the command line and the
console, so both explain a refusal the same way."""

from __future__ import annotations

from grctl.models.errors import (
    WorkflowAlreadyRunningError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowRunFinishedError,
    WorkflowTypeNotRegisteredError,
)


def explain(exc: WorkflowError, wf_id: str = "", wf_type: str = "") -> str:
    """The sentence for ``exc``, naming the workflow id (and type) the command was about."""
    if isinstance(exc, WorkflowNotFoundError):
        return f"workflow {wf_id!r} not found: it has no run"
    if isinstance(exc, WorkflowAlreadyRunningError):
        return f"workflow {wf_id!r} already has an active run"
    if isinstance(exc, WorkflowTypeNotRegisteredError):
        return f"workflow type {wf_type!r} is not registered (no worker serving it has started)"
    if isinstance(exc, WorkflowRunFinishedError):
        return f"the latest run of workflow {wf_id!r} has already finished"
    return f"the engine refused the command: {exc}"
