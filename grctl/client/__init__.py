"""The client side of the SDK: ``Client`` (start runs, wait for results, send events), the
``Connection`` it uses, the errors it raises, and console logging helpers."""

from grctl.client.client import Client
from grctl.logging_config import get_logger, setup_logging
from grctl.models.errors import (
    WorkflowAlreadyRunningError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowNotRetryableError,
    WorkflowRunFinishedError,
    WorkflowTypeNotRegisteredError,
)
from grctl.nats.connection import Connection

__all__ = [
    "Client",
    "Connection",
    "WorkflowAlreadyRunningError",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowNotRetryableError",
    "WorkflowRunFinishedError",
    "WorkflowTypeNotRegisteredError",
    "get_logger",
    "setup_logging",
]
