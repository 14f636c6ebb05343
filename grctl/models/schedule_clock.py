"""When a schedule's ticks fall due, and the names a tick's run gets.

Cron expressions are read by cronsim (five fields, evaluated in the schedule's time zone, so a daily
02:30 follows the wall clock across daylight-saving changes: a time that does not exist that day fires
at the change, a time that exists twice fires once). ``every`` ticks are aligned on the Unix epoch, so
every host computes the same instants. Every function is pure: the engine and grctld agree on a tick
because they compute it the same way, not because they talk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from ulid import ULID

from grctl import settings
from grctl.models.schedule import ScheduleSpec

MIN_EVERY = settings.SCHEDULE_MIN_EVERY


class ScheduleSpecError(ValueError):
    """A definition that cannot be used; ``field`` names the key at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleSpecError("timezone", f"unknown time zone {name!r} (use an IANA name such as "
                                "'Europe/Berlin' or 'UTC')") from exc


def check_cron(expression: str) -> None:
    if len(expression.split()) != 5:
        raise ScheduleSpecError("cron", f"cron {expression!r} must have five fields (minute hour "
                                "day-of-month month day-of-week)")
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ScheduleSpecError("cron", f"cron {expression!r}: {str(exc).lower()}") from exc


def check(spec: ScheduleSpec) -> None:
    """Raise ``ScheduleSpecError`` when ``spec`` cannot produce ticks as written."""
    if bool(spec.cron) == bool(spec.every):
        raise ScheduleSpecError("cron", "give either cron or every, not both and not neither")
    zone(spec.timezone)
    if spec.cron:
        check_cron(spec.cron)
    elif spec.every < MIN_EVERY or spec.every != int(spec.every):
        raise ScheduleSpecError("every", f"every must be a whole number of seconds, at least "
                                f"{MIN_EVERY:g}s (got {spec.every:g}s)")
    if spec.jitter < 0 or spec.catchup_window < 0:
        raise ScheduleSpecError("jitter" if spec.jitter < 0 else "catchup_window", "must not be negative")
    if spec.start is not None and spec.end is not None and spec.end <= spec.start:
        raise ScheduleSpecError("end", "end must come after start")


def _raw_ticks(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    if spec.every:
        step = int(spec.every)
        first = int(after.timestamp()) // step * step + step
        n = first
        while True:
            yield datetime.fromtimestamp(n, UTC)
            n += step
    else:
        for local in CronSim(spec.cron, after.astimezone(zone(spec.timezone))):
            yield local.astimezone(UTC)


def ticks_after(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """The nominal tick times strictly after ``after`` (UTC), inside ``start``/``end``, in order."""
    if spec.start is not None and after < spec.start:
        after = spec.start - timedelta(microseconds=1)
    for tick in _raw_ticks(spec, after):
        if spec.end is not None and tick > spec.end:
            return
        yield tick


def next_tick(spec: ScheduleSpec, after: datetime) -> datetime | None:
    return next(ticks_after(spec, after), None)


def next_ticks(spec: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    found: list[datetime] = []
    for tick in ticks_after(spec, after):
        found.append(tick)
        if len(found) == count:
            break
    return found


def ticks_between(spec: ScheduleSpec, first: datetime, last: datetime, limit: int) -> list[datetime]:
    """The ticks from ``first`` to ``last`` (both included), at most ``limit`` (the latest kept)."""
    found: list[datetime] = []
    for tick in ticks_after(spec, first - timedelta(microseconds=1)):
        if tick > last:
            break
        found.append(tick)
        if len(found) > limit:
            found.pop(0)
    return found


def _hash(schedule_id: str, tick: datetime) -> bytes:
    return hashlib.sha256(f"{schedule_id}\0{tick.isoformat()}".encode()).digest()


def jitter_delay(schedule_id: str, spec: ScheduleSpec, tick: datetime) -> float:
    """How much later than its nominal time ``tick`` fires: fixed per tick, in [0, jitter)."""
    if spec.jitter <= 0:
        return 0.0
    return int.from_bytes(_hash(schedule_id, tick)[:4]) / 2**32 * spec.jitter


def fire_time(schedule_id: str, spec: ScheduleSpec, tick: datetime) -> datetime:
    return tick + timedelta(seconds=jitter_delay(schedule_id, spec, tick))


def tick_name(tick: datetime) -> str:
    return tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tick_wf_id(schedule_id: str, tick: datetime) -> str:
    """The workflow id of a tick's run: ``{schedule id}@{tick, UTC, to the second}``."""
    return f"{schedule_id}@{tick_name(tick)}"


def tick_run_id(schedule_id: str, tick: datetime) -> str:
    """The run id of a tick's run: a ULID made of the tick's time and a hash of the schedule and tick,
    so a start sent twice for one tick (by two engines, or after a restart) names the same run and is
    stored once."""
    ms = int(tick.timestamp() * 1000)
    return str(ULID.from_bytes(ms.to_bytes(6, "big") + _hash(schedule_id, tick)[:10]))
