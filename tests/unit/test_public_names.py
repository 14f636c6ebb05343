"""The public SDK's import paths and names resolve here, beside ours, without import cycles."""

from __future__ import annotations

import asyncio
import importlib
import logging
import subprocess
import sys

import pytest

PUBLIC_NAMES = {
    "grctl.client": ["Client", "Connection", "get_logger", "setup_logging", "WorkflowError",
                     "WorkflowAlreadyRunningError", "WorkflowNotFoundError"],
    "grctl.logging_config": ["get_logger", "setup_logging"],
    "grctl.workflow": ["Workflow", "Directive", "WorkflowHandle", "HandlerConfig"],
    "grctl.workflow.workflow": ["Workflow", "HandlerConfig"],
    "grctl.workflow.handle": ["WorkflowHandle"],
    "grctl.workflow.future": ["WorkflowFuture"],
    "grctl.models": ["Directive", "ErrorDetails", "RunInfo", "RunStatus", "HistoryKind", "HistoryEvent",
                     "ChildWorkflowStarted", "EventReceived", "TimestampRecorded", "RandomRecorded",
                     "UuidRecorded", "SleepRecorded", "RunCompleted", "RunFailed", "RunCancelled",
                     "RunTerminated", "RunTimeout", "StepStarted", "StepCompleted", "StepFailed",
                     "StepTimedOut", "TaskStarted", "TaskCompleted", "TaskFailed", "WaitStarted",
                     "ParentEventSent", "RunEvents", "StepEvents", "TaskEvents", "DeterministicEvents",
                     "CmdKind", "GrctlAPIError", "GrctlAPIResponse"],
    "grctl.models.history": ["StepTimeout", "ChildWorkflowStarted", "HistoryEvent", "HistoryKind"],
    "grctl.models.errors": ["WorkflowError", "WorkflowNotFoundError", "WorkflowAlreadyRunningError",
                            "WorkflowTypeNotRegisteredError"],
    "grctl.models.directive": ["RetryPolicy", "Directive"],
    "grctl.worker": ["Context", "Worker", "task", "ChildOutcome", "StoreKeyNotFoundError"],
    "grctl.worker.codec": ["CodecRegistry"],
    "grctl.worker.context": ["Context"],
    "grctl.worker.task": ["task"],
    "grctl.worker.worker": ["Worker"],
    "grctl.nats.connection": ["Connection"],
    "grctl.client.client": ["Client"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_names_resolve(module: str) -> None:
    imported = importlib.import_module(module)
    assert [n for n in PUBLIC_NAMES[module] if not hasattr(imported, n)] == []


def test_public_names_are_our_types() -> None:
    from grctl.client.client import Client
    from grctl.models import history
    from grctl.models.command import CommandKind
    from grctl.workflow.future import WorkflowFuture
    from grctl.workflow.handle import WorkflowHandle

    assert importlib.import_module("grctl.client").Client is Client
    assert importlib.import_module("grctl.workflow").WorkflowHandle is WorkflowHandle
    assert importlib.import_module("grctl.workflow.future").WorkflowFuture is WorkflowFuture
    assert issubclass(WorkflowFuture, asyncio.Future)
    models = importlib.import_module("grctl.models")
    assert models.ChildWorkflowStarted is history.ChildStarted
    assert history.StepTimeout is history.StepTimedOut  # the public name of the history event
    assert models.StepTimeout is history.StepTimedOut  # the public SDK's meaning
    assert models.CmdKind is CommandKind


def _imported_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in sys.modules if m.startswith('grctl')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_defining_workflows_does_not_load_the_client_or_the_worker() -> None:
    loaded = _imported_after("from grctl.workflow import Directive, HandlerConfig, Workflow")
    assert not [m for m in loaded if m.startswith(("grctl.client", "grctl.worker", "grctl.nats.connection"))]


def test_the_client_does_not_import_the_worker() -> None:
    loaded = _imported_after("import grctl.client; from grctl.client import Client")
    assert "grctl.client.client" in loaded
    assert not [m for m in loaded if m.startswith("grctl.worker")]


def test_unknown_names_of_the_workflow_package_raise_attribute_error() -> None:
    with pytest.raises(AttributeError):
        importlib.import_module("grctl.workflow").NoSuchThing  # noqa: B018


def test_setup_logging_replaces_its_handler_instead_of_adding_another() -> None:
    from grctl.logging_config import get_logger, setup_logging

    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        setup_logging(logging.DEBUG)
        setup_logging(logging.WARNING)
        added = [h for h in root.handlers if h not in before]
        assert len(added) == 1 and added[0].level == logging.WARNING
        assert added[0].stream is sys.stdout  # type: ignore[attr-defined]
        assert root.level == logging.WARNING
        assert get_logger("grctl.test.x").level == logging.DEBUG
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
        root.setLevel(level)


def test_log_lines_have_level_time_place_and_message() -> None:
    from grctl.logging_config import ConsoleFormatter

    record = logging.LogRecord("n", logging.INFO, __file__, 12, "hello %s", ("there",), None, func="fn")
    line = ConsoleFormatter().format(record)
    level, _time, where, message = line.split(" ", 3)
    assert (level, where, message) == ("INFO", "[test_public_names.fn:12]", "hello there")
