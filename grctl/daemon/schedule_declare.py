"""grctld tells the engine which schedules its file declares: at its start and after every reload,
the whole ``schedules:`` section (empty too, so a schedule removed from the file is withdrawn), as one
``schedule.declare`` command, tried again until an engine answers. The engine reconciles the
declarations of every host; what it reports (applied, removed, declared differently by another host)
is logged here, conflicts as errors."""

from __future__ import annotations

import asyncio
import logging
import socket

from grctl import settings
from grctl.client.schedules import ScheduleCommands
from grctl.daemon.model import DaemonConfig, NatsConfig
from grctl.lifecycle import cancel
from grctl.models.errors import WorkflowError
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.probe import may_publish
from grctl.nats.retry import is_transient

log = logging.getLogger("grctl.daemon.schedules")


def declarer_name(cfg: DaemonConfig) -> str:
    """Who declares: this host and its configuration file (two grctld on one host are two declarers)."""
    return f"{socket.gethostname()}:{cfg.path}"


class ScheduleDeclarer:
    def __init__(self) -> None:
        self._connection: Connection | None = None
        self._connected_with: NatsConfig | None = None  # a reload that changes it reconnects
        self._task: asyncio.Task[None] | None = None

    def declare(self, cfg: DaemonConfig) -> None:
        """Send ``cfg``'s schedules in the background; a newer call replaces one still being sent."""
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._until_done(cfg), name="grctld-schedules")

    async def _until_done(self, cfg: DaemonConfig) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                if self._connection is not None and self._connected_with != cfg.nats:
                    await self._connection.close()
                    self._connection = None
                if self._connection is None:
                    self._connection = await Connection.connect(**cfg.nats.connect_options())
                    self._connected_with = cfg.nats
                if not cfg.schedules and not await may_publish(self._connection.nc, subjects.API_SCHEDULES):
                    # a least-privileged worker user: it cannot have declared any, so none to remove
                    log.debug("no schedules in the file, and its NATS user may not manage schedules")
                    return
                commands = ScheduleCommands(self._connection, f"grctld:{declarer_name(cfg)}",
                                            settings.SCHEDULE_DECLARE_BUDGET)
                result = await commands.declare(declarer_name(cfg), dict(cfg.schedules))
            except WorkflowError as exc:
                if not is_transient(exc) and getattr(exc, "code", 0) != 5030:
                    log.error("the engine refused this file's schedules: %s", exc)
                    return
                failure: Exception = exc
            except Exception as exc:
                if not is_transient(exc):
                    log.error("declaring this file's schedules failed", exc_info=exc)
                    return
                failure = exc
            else:
                for schedule_id, conflict in sorted(result.conflicts.items()):
                    log.error("schedule %s not applied: %s", schedule_id, conflict)
                if result.applied or result.removed or result.elsewhere:
                    log.info("schedules in force from this file: %s%s%s", ", ".join(result.applied) or "none",
                             f"; removed: {', '.join(result.removed)}" if result.removed else "",
                             f"; still declared by other hosts: {', '.join(result.elsewhere)}"
                             if result.elsewhere else "")
                return
            delay = settings.RESTART_BACKOFF.delay(attempt)
            log.log(logging.WARNING if attempt > 1 else logging.INFO,
                    "schedules not declared yet (%s); trying again in %gs", failure, delay)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._task is not None:
            await cancel(self._task)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
