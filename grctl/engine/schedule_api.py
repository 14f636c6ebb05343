"""Ours: the schedule commands of the engine API (``grctl_api.schedules``): declare (grctld, at its
start and at every reload), list, trigger, pause, resume, backfill; and the reconciliation every engine
does at its start, which re-arms any pending tick that went missing."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC

import msgspec

from grctl import settings
from grctl.engine import schedule_store as store
from grctl.engine.api_server import ApiServer, fail
from grctl.engine.schedule_reconcile import reconciled
from grctl.engine.schedules import Scheduler
from grctl.models.command import (
    ERR_INVALID_MESSAGE,
    ERR_INVALID_NAME,
    ERR_SCHEDULE_NOT_FOUND,
    APIResponse,
    Command,
    CommandKind,
)
from grctl.models.common import utcnow
from grctl.models.schedule import (
    BackfillCmd,
    DeclareCmd,
    DeclareResult,
    HostDeclaration,
    Overlap,
    RunOutcome,
    RunOutcomes,
    ScheduleCmd,
    ScheduleSpec,
    ScheduleState,
    ScheduleView,
    WithdrawCmd,
)
from grctl.models.schedule_clock import ScheduleSpecError, check, next_tick, next_ticks, ticks_between
from grctl.nats import subjects

log = logging.getLogger(__name__)


NOT_FOUND = fail(ERR_SCHEDULE_NOT_FOUND, "Schedule not found", "no schedule with this id is in force")


def declarer_key(declarer: str) -> str:
    """A subject token for a declarer's name (a host name and a file path)."""
    return hashlib.sha256(declarer.encode()).hexdigest()[:24]


def payload(value: msgspec.Struct | list[ScheduleView]) -> APIResponse:
    return APIResponse(success=True, payload=msgspec.to_builtins(value))


class ScheduleApi:
    def __init__(self, api: ApiServer, scheduler: Scheduler) -> None:
        self._api = api
        self._scheduler = scheduler
        self._nc = scheduler.nc
        handlers: dict[CommandKind, Callable[[Command], Awaitable[APIResponse]]] = {
            CommandKind.schedule_declare: self._declare,
            CommandKind.schedule_list: self._list,
            CommandKind.schedule_trigger: self._trigger,
            CommandKind.schedule_pause: self._pause,
            CommandKind.schedule_resume: self._resume,
            CommandKind.schedule_backfill: self._backfill,
            CommandKind.schedule_withdraw: self._withdraw,
        }
        for kind, handler in handlers.items():
            api.serve(kind, handler)

    # --- reconciliation -------------------------------------------------------------------------

    async def reconcile_all(self) -> None:
        """Bring every schedule in line with the stored declarations and re-arm missing ticks."""
        hosts = await store.all_hosts(self._nc)
        ids = {s.id for s in await store.all_states(self._nc)} | {i for h in hosts for i in h.schedules}
        for schedule_id in sorted(ids):
            state = await self._reconcile(schedule_id)
            if state is not None:
                await self._scheduler.ensure_armed(state)

    async def _reconcile(self, schedule_id: str) -> ScheduleState | None:
        async def change(current: ScheduleState | None) -> ScheduleState | None:
            # The declarations are read again with every attempt: two hosts declaring at once each see
            # the other's declaration by the time their compare-and-swap succeeds.
            return reconciled(schedule_id, await store.all_hosts(self._nc), current, utcnow())

        async def apply() -> ScheduleState | None:
            before, _ = await store.load(self._nc, schedule_id)
            state = await store.update(self._nc, schedule_id, change)
            if state is None:
                return None
            if state.removed or state.paused:
                await store.disarm(self._nc, schedule_id)
            elif before is None or before.digest != state.digest or before.removed:
                await self._scheduler.arm_next(state)
            if state.conflict:
                log.error("%s", state.conflict)
            return state

        return await self._scheduler.per_id.run(schedule_id, apply)

    async def _declare(self, cmd: Command) -> APIResponse:
        declare: DeclareCmd = cmd.msg
        for schedule_id, spec in declare.schedules.items():
            reason = subjects.invalid_token_reason(schedule_id)
            if reason:
                return fail(ERR_INVALID_NAME, "Invalid schedule id",
                            f"schedule id {schedule_id[:64]!r} {reason}")
            try:
                check(spec)
            except ScheduleSpecError as exc:
                return fail(ERR_INVALID_MESSAGE, "Invalid schedule",
                            f"schedules.{schedule_id}.{exc.field}: {exc}")
        before = await store.load_host(self._nc, declarer_key(declare.declarer))
        return payload(await self._apply(declare.declarer, declare.schedules, before))

    async def _withdraw(self, cmd: Command) -> APIResponse:
        target: WithdrawCmd = cmd.msg
        before = await store.load_host(self._nc, declarer_key(target.declarer))
        if before is None or not before.schedules:
            return fail(ERR_SCHEDULE_NOT_FOUND, "Declarer not found",
                        f"no schedules are declared by {target.declarer!r} (see declared_by in "
                        "grctl schedule list --json)")
        log.info("withdrawing the schedules declared by %s: %s", target.declarer,
                 ", ".join(sorted(before.schedules)))
        return payload(await self._apply(target.declarer, {}, before))

    async def _apply(self, declarer: str, schedules: dict[str, ScheduleSpec],
                     before: HostDeclaration | None) -> DeclareResult:
        """Store ``declarer``'s whole declaration (replacing ``before``) and reconcile every schedule it
        names now or named."""
        declaration = HostDeclaration(declarer=declarer, schedules=schedules, at=utcnow())
        await store.save_host(self._nc, declarer_key(declarer), declaration)
        result = DeclareResult()
        for schedule_id in sorted(set(schedules) | set(before.schedules if before else {})):
            state = await self._reconcile(schedule_id)
            if state is None:
                state, _ = await store.load(self._nc, schedule_id)
            if state is None:
                continue
            if state.removed:
                result.removed.append(schedule_id)
            elif schedule_id not in schedules:
                result.elsewhere.append(schedule_id)
            elif state.conflict:
                result.conflicts[schedule_id] = state.conflict
            else:
                result.applied.append(schedule_id)
        return result

    # --- operations -----------------------------------------------------------------------------

    async def _list(self, cmd: Command) -> APIResponse:
        now = utcnow()
        views = []
        for state in sorted(await store.all_states(self._nc), key=lambda s: s.id):
            if state.removed:
                continue
            view = ScheduleView(state=state)
            if state.spec is not None and not state.paused:
                view.next_fires = next_ticks(state.spec, now, 3)
            if state.last_wf_id:
                run = await self._api.latest_run(state.last_wf_id)
                view.last_status = str(run.status) if run is not None else "removed"
            views.append(view)
        return payload(views)

    async def _change(self, schedule_id: str,
                      change: Callable[[ScheduleState], Awaitable[bool]]) -> ScheduleState | None:
        """Apply ``change`` (True: write) to a schedule in force; None when there is none."""
        async def apply(current: ScheduleState | None) -> ScheduleState | None:
            if current is None or not current.active:
                raise LookupError(schedule_id)
            return current if await change(current) else None

        async def run() -> ScheduleState | None:
            try:
                return await store.update(self._nc, schedule_id, apply)
            except LookupError:
                return None

        return await self._scheduler.per_id.run(schedule_id, run)

    async def _trigger(self, cmd: Command) -> APIResponse:
        target: ScheduleCmd = cmd.msg
        outcomes: list[RunOutcome] = []

        async def trigger(state: ScheduleState) -> bool:
            outcomes.clear()
            now = utcnow().replace(microsecond=0)
            outcomes.append(await self._scheduler.fire(state, now))
            return True

        state = await self._change(target.id, trigger)
        return payload(outcomes[-1]) if state is not None else NOT_FOUND

    async def _pause(self, cmd: Command) -> APIResponse:
        target: ScheduleCmd = cmd.msg

        async def pause(state: ScheduleState) -> bool:
            state.operator_paused, state.pause_note = True, target.note
            return True

        state = await self._change(target.id, pause)
        if state is None:
            return NOT_FOUND
        await store.disarm(self._nc, target.id)
        log.info("schedule %s paused%s", target.id, f": {target.note}" if target.note else "")
        return payload(state)

    async def _resume(self, cmd: Command) -> APIResponse:
        target: ScheduleCmd = cmd.msg

        async def resume(state: ScheduleState) -> bool:
            assert state.spec is not None
            if state.spec.paused:
                raise ValueError("it is paused in the configuration file (paused: true): change the file")
            state.operator_paused, state.pause_note = False, ""
            state.next_tick = next_tick(state.spec, utcnow())  # the ticks while paused are not caught up
            return True

        try:
            state = await self._change(target.id, resume)
        except ValueError as exc:
            return fail(ERR_INVALID_MESSAGE, "Schedule not resumed", str(exc))
        if state is None:
            return NOT_FOUND
        await self._scheduler.arm_next(state)
        log.info("schedule %s resumed", target.id)
        return payload(state)

    async def _backfill(self, cmd: Command) -> APIResponse:
        """Every tick from start to end gets its run, whatever the overlap policy; a tick that has its
        run already keeps it (its run id is the same)."""
        backfill: BackfillCmd = cmd.msg
        start, end = backfill.start.astimezone(UTC), backfill.end.astimezone(UTC)
        if end < start:
            return fail(ERR_INVALID_MESSAGE, "Invalid backfill", "the end comes before the start")
        outcomes: list[RunOutcome] = []

        async def fill(state: ScheduleState) -> bool:
            assert state.spec is not None
            most = settings.SCHEDULE_MAX_BACKFILL
            ticks = ticks_between(state.spec, start, min(end, utcnow()), most + 1)
            if len(ticks) > most:
                raise ValueError(f"more than {most} ticks in that range: backfill a shorter one")
            outcomes.clear()
            latest = state.last_wf_id  # a backfilled run is not the one the overlap policy looks at
            for tick in ticks:
                outcomes.append(await self._scheduler.fire(state, tick, Overlap.allow_all))
            state.last_wf_id = latest
            return bool(ticks)

        try:
            state = await self._change(backfill.id, fill)
        except ValueError as exc:
            return fail(ERR_INVALID_MESSAGE, "Invalid backfill", str(exc))
        return payload(RunOutcomes(outcomes=outcomes)) if state is not None else NOT_FOUND
