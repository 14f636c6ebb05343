"""Exceptions the client and the SDK raise for workflow outcomes."""

import asyncio


class WorkflowError(Exception):
    """A workflow failed, or the engine refused a command."""


class WorkflowNotFoundError(WorkflowError):
    """No run exists for the workflow id."""


class WorkflowAlreadyRunningError(WorkflowError):
    """The workflow id already has an active run."""


class WorkflowTypeNotRegisteredError(WorkflowError):
    """No worker has registered the workflow type."""


class WorkflowRunFinishedError(WorkflowError):
    """The run has already finished and cannot accept the command."""


class WorkflowNotRetryableError(WorkflowError):
    """The run cannot be retried: it has not ended as failed, timed out or terminated, or it is not the
    latest run of its workflow id."""


class NonDeterminismError(WorkflowError):
    """A re-executed step did not repeat the operations its history recorded."""


class WorkflowCancelledError(WorkflowError, asyncio.CancelledError):
    """The run was cancelled. Also an ``asyncio.CancelledError``, as the public SDK raises."""


class WorkflowTerminatedError(WorkflowCancelledError):
    """The run was terminated."""
