"""The worker runtime: ``Worker``, the handler ``Context``, ``@task``, the store and child outcomes."""

from grctl.worker.child import ChildOutcome
from grctl.worker.context import Context
from grctl.worker.store import StoreKeyNotFoundError
from grctl.worker.task import task
from grctl.worker.worker import Worker

__all__ = ["ChildOutcome", "Context", "StoreKeyNotFoundError", "Worker", "task"]
