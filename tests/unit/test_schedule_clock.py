"""When ticks fall due (cron in a time zone across daylight-saving changes, every, start/end, jitter),
the names of a tick's run, and which definition is in force when hosts declare a schedule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from grctl.daemon.cli import main
from grctl.engine.schedule_reconcile import reconciled
from grctl.models.schedule import HostDeclaration, ScheduleSpec, ScheduleState
from grctl.models.schedule_clock import (
    ScheduleSpecError,
    check,
    fire_time,
    next_ticks,
    tick_run_id,
    tick_wf_id,
    ticks_between,
)

BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_daily_cron_keeps_the_wall_clock_across_spring_forward() -> None:
    # 2026-03-29 02:00 CET → 03:00 CEST: 02:30 does not exist that day and fires at the change.
    spec = ScheduleSpec(workflow="W", cron="30 2 * * *", timezone=BERLIN)
    assert next_ticks(spec, utc(2026, 3, 27, 12), 4) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, the first instant after the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_daily_cron_fires_once_when_fall_back_repeats_the_hour() -> None:
    # 2026-10-25 03:00 CEST → 02:00 CET: 02:30 happens twice; it fires once.
    spec = ScheduleSpec(workflow="W", cron="30 2 * * *", timezone=BERLIN)
    ticks = next_ticks(spec, utc(2026, 10, 24, 12), 3)
    assert ticks[0] == utc(2026, 10, 25, 0, 30)  # the first 02:30 (CEST)
    assert ticks[1:] == [utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]  # 02:30 CET


def test_hourly_cron_in_a_zone_counts_real_hours_across_fall_back() -> None:
    spec = ScheduleSpec(workflow="W", cron="0 * * * *", timezone=BERLIN)
    ticks = next_ticks(spec, utc(2026, 10, 24, 23, 30), 4)
    assert [t - ticks[0] for t in ticks] == [timedelta(hours=h) for h in range(4)]


def test_every_is_aligned_on_the_epoch_and_bounded_by_start_and_end() -> None:
    spec = ScheduleSpec(workflow="W", every=600, start=utc(2027, 1, 1, 0, 5), end=utc(2027, 1, 1, 0, 40))
    assert next_ticks(spec, utc(2026, 12, 31), 10) == [utc(2027, 1, 1, 0, m) for m in (10, 20, 30, 40)]
    assert ticks_between(spec, utc(2027, 1, 1, 0, 20), utc(2027, 1, 1, 0, 30), 100) == [
        utc(2027, 1, 1, 0, 20), utc(2027, 1, 1, 0, 30)]
    assert ticks_between(spec, utc(2027, 1, 1), utc(2027, 1, 2), 2) == [utc(2027, 1, 1, 0, 30),
                                                                         utc(2027, 1, 1, 0, 40)]


def test_jitter_is_fixed_per_tick_and_inside_its_bound() -> None:
    spec = ScheduleSpec(workflow="W", every=60, jitter=30)
    ticks = next_ticks(spec, utc(2027, 1, 1), 50)
    delays = [(fire_time("s", spec, t) - t).total_seconds() for t in ticks]
    assert all(0 <= d < 30 for d in delays) and len(set(delays)) > 40
    assert delays == [(fire_time("s", spec, t) - t).total_seconds() for t in ticks]


def test_a_tick_names_one_run() -> None:
    tick = utc(2027, 1, 1, 2)
    assert tick_wf_id("nightly", tick) == "nightly@2027-01-01T02:00:00Z"
    run_id = tick_run_id("nightly", tick)
    assert len(run_id) == 26 and run_id == tick_run_id("nightly", tick)
    assert run_id != tick_run_id("nightly", tick + timedelta(seconds=1)) != tick_run_id("other", tick)


@pytest.mark.parametrize(("spec", "field"), [
    (ScheduleSpec(workflow="W"), "cron"),
    (ScheduleSpec(workflow="W", cron="* * * * *", every=60), "cron"),
    (ScheduleSpec(workflow="W", cron="61 * * * *"), "cron"),
    (ScheduleSpec(workflow="W", cron="* * * * * *"), "cron"),
    (ScheduleSpec(workflow="W", every=0.5), "every"),
    (ScheduleSpec(workflow="W", every=60, timezone="Mars/Olympus"), "timezone"),
    (ScheduleSpec(workflow="W", every=60, start=utc(2027, 1, 2), end=utc(2027, 1, 1)), "end"),
])
def test_unusable_definitions_name_their_key(spec: ScheduleSpec, field: str) -> None:
    with pytest.raises(ScheduleSpecError) as caught:
        check(spec)
    assert caught.value.field == field


def host(name: str, **schedules: ScheduleSpec) -> HostDeclaration:
    return HostDeclaration(declarer=name, schedules=schedules, at=utc(2027, 1, 1))


def test_reconcile_applies_agreement_keeps_the_old_definition_on_conflict_and_removes() -> None:
    now = utc(2027, 1, 1)
    two, four = ScheduleSpec(workflow="W", every=2.0), ScheduleSpec(workflow="W", every=4.0)
    state = reconciled("s", [host("a", s=two), host("b", s=two)], None, now)
    assert state is not None and state.spec == two and state.declared_by == ["a", "b"]
    assert state.next_tick == utc(2027, 1, 1, 0, 0, 2)
    assert reconciled("s", [host("a", s=two), host("b", s=two)], state, now) is None  # nothing changed

    conflicted = reconciled("s", [host("a", s=two), host("b", s=four)], state, now)
    assert conflicted is not None and conflicted.spec == two and conflicted.digest == two.digest()
    assert "declared differently by a and b (every: 2.0 vs 4.0)" in conflicted.conflict
    assert reconciled("s", [host("a", s=four), host("b", s=two)], None, now) == ScheduleState(
        id="s", declared_by=["a", "b"], conflict=conflicted.conflict.replace("2.0 vs 4.0", "4.0 vs 2.0"))

    agreed = reconciled("s", [host("a", s=four)], conflicted, now)
    assert agreed is not None and agreed.spec == four and agreed.conflict == ""
    removed = reconciled("s", [host("a"), host("b")], agreed, now)
    assert removed is not None and removed.removed and not removed.active and removed.next_tick is None


def test_print_config_shows_the_schedules_and_their_next_three_fires(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRCTL_NATS_SERVERS", raising=False)
    config = tmp_path / "grctl.yaml"
    config.write_text("workflows: [grctl.demo]\nschedules:\n  nightly:\n    workflow: Report\n"
                      "    cron: '0 2 * * *'\n    timezone: Europe/Berlin\n    catchup_window: 1h\n"
                      "  often:\n    workflow: Sync\n    every: 10m\n    paused: true\n")
    assert main(["-c", str(config), "--print-config"]) == 0
    out = capsys.readouterr().out
    printed = yaml.safe_load(out)["schedules"]
    assert printed["nightly"] == {"workflow": "Report", "cron": "0 2 * * *", "timezone": "Europe/Berlin",
                                  "jitter": 0.0, "overlap": "skip", "catchup_window": 3600.0, "paused": False}
    assert printed["often"]["every"] == 600.0 and "cron" not in printed["often"]
    nightly = re.search(r"^# schedule nightly: next fires (.*)$", out, re.MULTILINE)
    assert nightly is not None and len(nightly.group(1).split(", ")) == 3
    assert all(re.fullmatch(r"\S+ 0[01]:00:00Z \(\S+ 02:00:00 Europe/Berlin\)", t)
               for t in nightly.group(1).split(", ")), nightly.group(1)
    assert re.search(r"^# schedule often: next fires .* \(paused in this file\)$", out, re.MULTILINE)
    again = tmp_path / "again.yaml"
    again.write_text("\n".join(line for line in out.splitlines() if not line.startswith("#")))
    assert main(["-c", str(again), "--check-config"]) == 0  # what it prints is a valid file again
