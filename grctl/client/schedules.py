"""The schedule commands a client sends (``grctl_api.schedules``, ours): what ``Client``'s schedule
methods, ``grctl schedule`` and grctld's declaration use."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec

from grctl import settings
from grctl.models.command import CommandKind
from grctl.models.schedule import (
    BackfillCmd,
    DeclareCmd,
    DeclareResult,
    RunOutcome,
    RunOutcomes,
    ScheduleCmd,
    ScheduleListCmd,
    ScheduleSpec,
    ScheduleState,
    ScheduleView,
    WithdrawCmd,
)
from grctl.nats import api_client as api
from grctl.nats import subjects
from grctl.nats.connection import Connection

T = TypeVar("T")


class ScheduleCommands:
    """Schedule commands on one connection, as ``sender_id``, retried for up to ``budget`` seconds."""

    def __init__(self, connection: Connection, sender_id: str, budget: float = settings.API_BUDGET) -> None:
        self._connection = connection
        self._sender_id = sender_id
        self.budget = budget

    async def _call(self, schedule_id: str, kind: CommandKind, msg: Any, result: type[T]) -> T:
        reply = await api.call(self._connection, schedule_id, kind, msg, self._sender_id, budget=self.budget,
                               subject=subjects.API_SCHEDULES)
        return msgspec.convert(reply.response.payload, result)

    async def declare(self, declarer: str, schedules: dict[str, ScheduleSpec]) -> DeclareResult:
        return await self._call("", CommandKind.schedule_declare,
                                DeclareCmd(declarer=declarer, schedules=schedules), DeclareResult)

    async def withdraw(self, declarer: str) -> DeclareResult:
        """Withdraw what ``declarer`` (a host name and file path, as ``declared_by`` lists it) declared."""
        return await self._call("", CommandKind.schedule_withdraw, WithdrawCmd(declarer=declarer),
                                DeclareResult)

    async def all(self) -> list[ScheduleView]:
        return await self._call("", CommandKind.schedule_list, ScheduleListCmd(), list[ScheduleView])

    async def trigger(self, schedule_id: str) -> RunOutcome:
        return await self._call(schedule_id, CommandKind.schedule_trigger, ScheduleCmd(id=schedule_id),
                                RunOutcome)

    async def pause(self, schedule_id: str, note: str = "") -> ScheduleState:
        return await self._call(schedule_id, CommandKind.schedule_pause,
                                ScheduleCmd(id=schedule_id, note=note), ScheduleState)

    async def resume(self, schedule_id: str) -> ScheduleState:
        return await self._call(schedule_id, CommandKind.schedule_resume, ScheduleCmd(id=schedule_id),
                                ScheduleState)

    async def backfill(self, schedule_id: str, start: datetime, end: datetime) -> list[RunOutcome]:
        outcomes = await self._call(schedule_id, CommandKind.schedule_backfill,
                                    BackfillCmd(id=schedule_id, start=start, end=end), RunOutcomes)
        return outcomes.outcomes
