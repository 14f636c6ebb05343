"""Where schedules live in the stream: one state record per schedule and one declaration record per
grctld host (both last-value subjects, rolled up), and each schedule's pending tick message.

A state is written with compare-and-swap on its subject, so two engines acting on one schedule at once
never lose each other's changes: the loser reads again and redoes its change (``update``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec
from nats.aio.client import Client as NATSClient

from grctl import settings
from grctl.engine.persistence import CommitVerdict, classify
from grctl.models.common import utcnow
from grctl.models.schedule import HostDeclaration, ScheduleState, Tick, TickKind
from grctl.nats import subjects
from grctl.nats.direct import get_last, read_subject
from grctl.nats.jetstream import H_EXPECTED_LAST_SUBJECT_SEQ, H_ROLLUP, publish, purge, schedule_headers

log = logging.getLogger(__name__)

_state_decoder = msgspec.msgpack.Decoder(ScheduleState)
_host_decoder = msgspec.msgpack.Decoder(HostDeclaration)


class ScheduleConflictError(Exception):
    """A state kept changing under us for ``SCHEDULE_UPDATE_ATTEMPTS`` reads: tried again later."""


async def load(nc: NATSClient, schedule_id: str) -> tuple[ScheduleState | None, int]:
    """The schedule's state and the stream sequence it was read at (0: none stored)."""
    stored = await get_last(nc, subjects.schedule_state(schedule_id))
    if stored is None:
        return None, 0
    return _state_decoder.decode(stored.data), stored.seq


Change = Callable[[ScheduleState | None], Awaitable[ScheduleState | None]]


async def update(nc: NATSClient, schedule_id: str, change: Change) -> ScheduleState | None:
    """Read the state, let ``change`` make the new one (None: nothing to write) and store it with
    compare-and-swap, again from a fresh read when another writer came first. ``change`` may run more
    than once, so what it does besides returning the state must be safe to repeat."""
    for _ in range(settings.SCHEDULE_UPDATE_ATTEMPTS):
        current, seq = await load(nc, schedule_id)
        new = await change(current)
        if new is None:
            return current
        new.updated = utcnow()
        try:
            await publish(nc, subjects.schedule_state(schedule_id), msgspec.msgpack.encode(new),
                          {H_EXPECTED_LAST_SUBJECT_SEQ: str(seq), H_ROLLUP: "sub"})
        except Exception as exc:
            if classify(exc) is CommitVerdict.RESNAPSHOT:
                continue
            raise
        return new
    raise ScheduleConflictError(f"schedule {schedule_id} kept changing; try again")


async def all_states(nc: NATSClient) -> list[ScheduleState]:
    return [_state_decoder.decode(m.data) for m in await read_subject(nc, subjects.SCHEDULE_STATES)]


async def all_hosts(nc: NATSClient) -> list[HostDeclaration]:
    return [_host_decoder.decode(m.data) for m in await read_subject(nc, subjects.SCHEDULE_HOSTS)]


async def load_host(nc: NATSClient, key: str) -> HostDeclaration | None:
    stored = await get_last(nc, subjects.schedule_host(key))
    return _host_decoder.decode(stored.data) if stored is not None else None


async def save_host(nc: NATSClient, key: str, declaration: HostDeclaration) -> None:
    await publish(nc, subjects.schedule_host(key), msgspec.msgpack.encode(declaration), {H_ROLLUP: "sub"})


async def arm(nc: NATSClient, state: ScheduleState, kind: TickKind, tick: datetime, at: datetime) -> None:
    """Make the schedule's one pending ``kind`` message fall due at ``at`` (replacing any pending one:
    the server keeps one schedule per subject)."""
    body = msgspec.msgpack.encode(Tick(id=state.id, kind=kind, tick=tick, digest=state.digest))
    await publish(nc, subjects.schedule_timer(state.id, kind), body,
                  schedule_headers(at, subjects.SCHEDULE_FIRED))


async def armed(nc: NATSClient, schedule_id: str, kind: TickKind) -> bool:
    return await get_last(nc, subjects.schedule_timer(schedule_id, kind)) is not None


async def disarm(nc: NATSClient, schedule_id: str) -> None:
    """Remove the schedule's pending messages: they never fire."""
    for kind in TickKind:
        await purge(nc, subjects.schedule_timer(schedule_id, kind))
