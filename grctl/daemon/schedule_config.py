"""The ``schedules:`` section of grctl.yaml: from schema-valid data to ``ScheduleSpec``s (the checks a
schema cannot express, each located at its key), and the next fire times ``--print-config`` shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from grctl import settings
from grctl.daemon.schema import parse_duration, parse_timestamp
from grctl.daemon.yamlmarks import Path
from grctl.models.schedule import DEFAULT_CATCHUP_WINDOW, DEFAULT_TIMEZONE, Overlap, ScheduleSpec
from grctl.models.schedule_clock import ScheduleSpecError, check, next_ticks


def resolve_schedules(section: dict[str, Any], fail: Callable[[Path, str], None]) -> dict[str, ScheduleSpec]:
    """Every schedule that can be used; ``fail`` is told, at the key concerned, why one cannot."""
    found: dict[str, ScheduleSpec] = {}
    for schedule_id, d in section.items():
        def get_time(key: str, d: dict[str, Any] = d) -> datetime | None:
            return parse_timestamp(d[key]) if key in d else None

        spec = ScheduleSpec(
            workflow=d["workflow"],
            input=d.get("input"),
            cron=d.get("cron", ""),
            every=parse_duration(d["every"]) if "every" in d else 0.0,
            timezone=d.get("timezone", DEFAULT_TIMEZONE),
            jitter=parse_duration(d.get("jitter", 0)),
            start=get_time("start"),
            end=get_time("end"),
            overlap=Overlap(d.get("overlap", Overlap.skip)),
            catchup_window=parse_duration(d.get("catchup_window", DEFAULT_CATCHUP_WINDOW)),
            paused=bool(d.get("paused", False)),
        )
        try:
            check(spec)
        except ScheduleSpecError as exc:
            key = next((k for k in (exc.field, "cron", "every") if k in d), None)
            fail(("schedules", schedule_id, key) if key else ("schedules", schedule_id), str(exc))
            continue
        found[schedule_id] = spec
    return found


def next_fire_lines(schedules: dict[str, ScheduleSpec], now: datetime) -> list[str]:
    """One comment line per schedule: its next fire times (UTC, and in the schedule's time zone when it
    has another), or why it has none."""
    lines = []
    for schedule_id, spec in sorted(schedules.items()):
        ticks = next_ticks(spec, now, settings.SCHEDULE_FIRES_SHOWN)
        zone = ZoneInfo(spec.timezone) if spec.cron and spec.timezone != "UTC" else None
        shown = ", ".join(t.strftime("%Y-%m-%d %H:%M:%SZ") + (
            f" ({t.astimezone(zone):%Y-%m-%d %H:%M:%S} {spec.timezone})" if zone else "") for t in ticks) \
            or "none (past its end)"
        paused = " (paused in this file)" if spec.paused else ""
        lines.append(f"# schedule {schedule_id}: next fires {shown}{paused}")
    return lines
