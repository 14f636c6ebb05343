"""What the parts of grctld's supervisor share: its state, its tasks and what a child's failure means.

The supervisor is split by responsibility into classes over this state: ``ChangeWatch`` (the
configuration and workflow sources changing, ``daemon/changes.py``), ``CrashRestarts`` (children
that exit unexpectedly, ``daemon/restarts.py``) and ``Supervisor`` itself (the event loop, signals,
reloads by generations, services and the stop, ``daemon/supervisor.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from grctl.daemon.config import workflow_problem
from grctl.daemon.events import Event
from grctl.daemon.model import DaemonConfig
from grctl.daemon.procs import ChildFailed, ChildProcess, Generation
from grctl.daemon.watch import Watcher


class SupervisorState:
    cfg: DaemonConfig
    config_path: str
    queue: asyncio.Queue[Event]
    current: Generation | None  # the ready generation
    generations: set[Generation]  # every generation still running, the current one included
    engine: ChildProcess | None  # the embedded engine
    stopping: bool
    digest: str | None  # of the configuration file's content when it was last loaded
    sources: dict[str, str | None]  # content digest of the workflow sources, by path
    watcher: Watcher | None
    tasks: set[asyncio.Task[Any]]

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _located(self, exc: Exception) -> Exception:
        """A child's error about a ``workflows`` entry, as ``file:line:col: workflows[N]: ...``."""
        if isinstance(exc, ChildFailed) and exc.entry is not None:
            problem = workflow_problem(self.config_path, exc.entry, str(exc))
            return ChildFailed(str(problem), exc.fatal, exc.entry)
        return exc

    def _request_reload(self, reason: str) -> None:
        raise NotImplementedError  # the supervisor's
