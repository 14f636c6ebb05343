"""Exceptions raised by the worker runtime."""

from __future__ import annotations

from grctl.models.errors import NonDeterminismError

__all__ = [
    "DispatchEnded",
    "NextDirectiveMissingError",
    "NonDeterminismError",
    "RegistrationError",
    "StepInterrupted",
    "StepSuperseded",
    "WorkerConsumerError",
]


class RegistrationError(Exception):
    """The engine did not accept the worker's catalog; the worker must not consume."""


class WorkerConsumerError(Exception):
    """The worker-task consumer of a workflow type cannot be used by this worker."""


class NextDirectiveMissingError(Exception):
    """A handler returned something other than a directive built by ``ctx.next``."""

    def __init__(self, step_name: str, returned: object) -> None:
        super().__init__(
            f"handler of step {step_name!r} returned {type(returned).__name__} instead of a directive; "
            "return ctx.next.step(...), ctx.next.wait(...), ctx.next.complete(...) or ctx.next.fail(...)"
        )


class HandlerNotFoundError(LookupError):
    """A task names a step or event the workflow has no handler for."""


class StepInterrupted(BaseException):
    """The step cannot talk to NATS now (its history, store, child or event writes kept failing for the
    time it had): it is not the handler's failure, so the step is not reported and is delivered again.

    A ``BaseException``, like ``asyncio.CancelledError``, so that ``except Exception`` in handler code
    does not turn it into a handled error."""


class StepSuperseded(BaseException):
    """Another execution of this step (a second delivery of its task) claimed it: this execution stops
    without writing or reporting anything more, and leaves the task to the one that holds the claim."""


class DispatchEnded(StepSuperseded):
    """The dispatch this execution belongs to is over (its step ended, or the run did: the history says
    so): a delivery of a task whose ack was lost, say with a crashed nats-server. It runs and records
    nothing, and its task is acknowledged."""
