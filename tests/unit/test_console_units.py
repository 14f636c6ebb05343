"""The console's pure parts: the timeline drawn from a history, the Runs filter in the URL, the run
index's pages and counts, the Workers page's rates, who a request is (credentials, path prefix), and
the start-time refusal of an open console on the network."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from multidict import MultiDict
from prometheus_client import CollectorRegistry, Counter

from grctl.console import timeline
from grctl.console.access import ADMIN, VIEWER, loopback_host, role_of
from grctl.console.query import RunsQuery
from grctl.console.rates import Rates
from grctl.console.settings import ConsoleRefused, ConsoleSettings
from grctl.daemon.config import load_config
from grctl.engine.manager import step_ends
from grctl.engine.runindex import STUCK, RunFilter, RunIndex
from grctl.engine.writes import HistoryRec
from grctl.models.common import ErrorDetails, RunInfo, RunStatus, Stuck
from grctl.models.history import (
    HistoryEvent,
    HistoryKind,
    RunFailed,
    SleepRecorded,
    StepCompleted,
    StepFailed,
    StepStarted,
    TaskAttemptFailed,
    TaskFailed,
    TaskStarted,
    WaitStarted,
)
from grctl.ops.listen import Endpoint

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
H = HistoryKind
ERR = ErrorDetails(type="Boom", message="no")


def event(at_ms: int, kind: HistoryKind, msg: object) -> HistoryEvent:
    return HistoryEvent("wf", "run", "w", T0 + timedelta(milliseconds=at_ms), kind, msg)


def test_the_timeline_places_steps_tasks_retries_timers_and_waits() -> None:
    history = [
        event(0, H.run_started, None),
        event(10, H.step_started, StepStarted("start")),
        event(20, H.sleep_recorded, SleepRecorded(200)),
        event(230, H.step_completed, StepCompleted("start", duration_ms=220)),
        event(239, H.task_started, TaskStarted("t1", "charge", {}, "charge")),  # before its step
        event(240, H.step_started, StepStarted("charge")),
        event(300, H.task_attempt_failed, TaskAttemptFailed("t1", "charge", "charge", 1, 3, ERR, 100, 60)),
        event(460, H.task_attempt_failed, TaskAttemptFailed("t1", "charge", "charge", 2, 3, ERR, 200, 60)),
        event(720, H.task_failed, TaskFailed("t1", "charge", "charge", ERR, 60)),
        event(730, H.step_failed, StepFailed("charge", ERR)),
        event(740, H.run_failed, RunFailed(ERR)),
    ]
    line = timeline.build(history, now=T0 + timedelta(hours=1))
    assert line is not None
    assert [(b.kind, b.label, b.outcome) for b in line.bars] == [
        ("step", "start", "ok"), ("timer", "sleep 0.2 s", "ok"), ("step", "charge", "failed"),
        ("task", "charge › charge", "failed")]
    assert line.end == T0 + timedelta(milliseconds=740)  # the run's end, not "now"
    task = line.bars[3]
    assert len(task.retries) == 2 and task.seconds(line.end) == pytest.approx(0.481)
    assert line.x(T0) == 0 and line.x(line.end) == 100
    assert line.width(line.bars[0]) == pytest.approx(220 / 740 * 100)


def test_an_open_wait_runs_until_now_and_an_ended_run_closes_what_was_open() -> None:
    waiting = [event(0, H.run_started, None), event(5, H.wait_started, WaitStarted(timeout_step_name="late"))]
    now = T0 + timedelta(seconds=10)
    line = timeline.build(waiting, now)
    assert line is not None
    assert [(b.kind, b.label, b.outcome, b.end) for b in line.bars] == [
        ("wait", "wait for an event (then late)", "running", None)]
    assert line.end == now and line.bars[0].seconds(now) == pytest.approx(9.995)
    cancelled = [*waiting, event(50, H.step_started, StepStarted("s")), event(60, H.run_cancelled, None)]
    line = timeline.build(cancelled, now)
    assert line is not None
    assert [(b.kind, b.outcome) for b in line.bars] == [("wait", "ok"), ("step", "cancelled")]
    assert timeline.build([], now) is None


def test_the_runs_filter_reads_its_url_drops_bad_values_and_writes_it_back() -> None:
    params = MultiDict([("status", "failed"), ("status", "timed_out,bogus"), ("type", "Orders"),
                        ("range", "1h"), ("q", "ord"), ("from", "not a time"), ("after", "12.5:R1")])
    query = RunsQuery.from_params(params)
    assert query.statuses == ("failed", "timed_out") and query.range == "1h" and query.start == ""
    now = T0
    wanted = query.filter(now)
    assert wanted == RunFilter(frozenset({"failed", "timed_out"}), "Orders", now - timedelta(hours=1), None,
                               "ord")
    assert query.after is not None and (query.after.created, query.after.run_id) == (12.5, "R1")
    again = RunsQuery.from_params(MultiDict(msgspec.convert(
        [tuple(p.split("=")) for p in query.params(after="").split("&")], list[tuple[str, str]])))
    assert again == RunsQuery(("failed", "timed_out"), "Orders", "1h", "", "", "ord", "")
    ranged = RunsQuery.from_params(MultiDict([("from", "2026-01-01T10:00"), ("to", "2026-01-01T11:00")]))
    assert ranged.filter(now).since == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert RunsQuery.from_params(MultiDict([("range", "5y")])).range == ""


def test_the_run_index_pages_newest_first_and_counts_per_status() -> None:
    index = RunIndex(nc=None, js=None, retention=None)  # type: ignore[arg-type]
    for i in range(25):
        status = RunStatus.failed if i % 5 == 0 else RunStatus.completed
        info = RunInfo(id=f"R{i:03d}", wf_id=f"order-{i}", wf_type="A" if i % 2 else "B", status=status,
                       created_at=T0 + timedelta(seconds=i))
        index._add(msgspec.msgpack.encode(info), i + 1, "subject")
    now = T0 + timedelta(hours=1)
    seen: list[str] = []
    after = None
    while True:
        page = index.page(now, RunFilter(), 10, after)
        seen += [msgspec.msgpack.decode(raw, type=RunInfo).wf_id for raw, _ in page]
        if len(page) < 10:
            break
        after = page[-1][1]
    assert seen == [f"order-{i}" for i in reversed(range(25))]
    failed, counted = index.overview(now, RunFilter(frozenset({"failed"}), "A"), 10)
    assert [msgspec.msgpack.decode(r, type=RunInfo).id for r, _ in failed] == ["R015", "R005"]
    assert counted == {("A", "failed"): 2, ("A", "completed"): 10, ("B", "failed"): 3, ("B", "completed"): 10}
    assert index.tally(now, RunFilter(id_prefix="order-2")) == {("B", "failed"): 1, ("A", "completed"): 2,
                                                                ("B", "completed"): 3}  # 2, 20..24
    window = RunFilter(since=T0 + timedelta(seconds=5), until=T0 + timedelta(seconds=8))
    assert [msgspec.msgpack.decode(r, type=RunInfo).id for r, _ in index.page(now, window, 10)] == [
        "R007", "R006", "R005"]
    assert [msgspec.msgpack.decode(r, type=RunInfo).id for r, _ in index.page(now, RunFilter(id_prefix="R02"),
                                                                              10)] == [
        "R024", "R023", "R022", "R021", "R020"]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_give_a_role() -> None:
    assert role_of(ConsoleSettings(), "") == ADMIN  # nothing configured: loopback development node
    both = ConsoleSettings(admin_password="admin-secret", viewer_password="viewer-secret")
    assert role_of(both, "") is None
    assert role_of(both, "Bearer admin-secret") == ADMIN
    assert role_of(both, "Bearer viewer-secret") == VIEWER
    assert role_of(both, basic("anyone", "viewer-secret")) == VIEWER
    assert role_of(both, basic("admin", "admin-secret")) == ADMIN
    assert role_of(both, basic("admin", "wrong")) is None
    assert role_of(both, "Basic !!!") is None
    assert role_of(ConsoleSettings(viewer_password="viewer-secret"), "Bearer admin-secret") is None


def test_an_open_console_answers_loopback_host_names_only() -> None:
    for host in ("127.0.0.1:9465", "localhost:9465", "[::1]:9465", "localhost", "app.localhost:80"):
        assert loopback_host(host), host
    for host in ("evil.example:9465", "10.0.0.5:9465", "[2001:db8::1]:9465", "127.0.0.1.evil.example"):
        assert not loopback_host(host), host


def test_an_open_console_is_refused_off_loopback() -> None:
    ConsoleSettings().check(Endpoint("127.0.0.1", 9465))
    ConsoleSettings().check(Endpoint("::1", 9465))
    ConsoleSettings().check(Endpoint("localhost", 9465))
    with pytest.raises(ConsoleRefused, match="without credentials"):
        ConsoleSettings().check(Endpoint("0.0.0.0", 9465))
    with pytest.raises(ConsoleRefused):
        ConsoleSettings().check(Endpoint("10.1.2.3", 9465))
    ConsoleSettings(admin_password="admin-secret").check(Endpoint("0.0.0.0", 9465))
    ConsoleSettings(enabled=False).check(Endpoint("0.0.0.0", 9465))  # metrics only, as before


def test_console_passwords_come_from_the_file_or_a_secret_file_and_are_masked(tmp_path: Path) -> None:
    (tmp_path / "viewer").write_text("viewer-secret-1\n")
    config = tmp_path / "grctl.yaml"
    config.write_text("workflows: [grctl.demo]\nengine:\n  http:\n    listen: 10.0.0.5:9465\n    console:\n"
                      "      admin_password: admin-secret-1\n      viewer_password_file: viewer\n"
                      "      path_prefix: /grctl\n")
    config.chmod(0o600)
    cfg = load_config(str(config), environ={})
    console = cfg.engine.http.console
    assert (console.admin_password, console.viewer_password, console.path_prefix) == (
        "admin-secret-1", "viewer-secret-1", "/grctl")
    assert cfg.masked()["engine"]["http"]["console"]["admin_password"] == "********"
    assert {"admin-secret-1", "viewer-secret-1"} <= set(cfg.secrets())
    assert type(cfg).decode(cfg.encode()).engine.http.console == console  # as grctld's children get it


def test_rates_are_the_increase_per_minute_since_the_oldest_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    started = Counter("grctl_engine_runs_started", "runs", ["wf_type"], registry=registry)
    clock = iter([100.0, 130.0])
    monkeypatch.setattr("grctl.console.rates.time.monotonic", lambda: next(clock))
    rates = Rates(registry)
    assert rates.per_minute() == (0.0, {})
    rates.sample()  # t=100
    started.labels("Orders").inc(15)
    span, per_minute = rates.per_minute()  # read at t=130
    assert span == 30.0 and per_minute[("grctl_engine_runs_started_total", "Orders")] == 30.0


def test_the_rates_read_the_steps_ended_per_type_that_the_engine_counts_from_its_records(
        monkeypatch: pytest.MonkeyPatch) -> None:
    records = [HistoryRec(event(0, H.step_completed, StepCompleted("start"))),
               HistoryRec(event(1, H.step_started, StepStarted("charge"))),
               HistoryRec(event(2, H.step_failed, StepFailed("charge", ERR)))]
    assert step_ends(records) == ["step.completed", "step.failed"]  # what the engine counts on commit
    registry = CollectorRegistry()
    ended = Counter("grctl_engine_steps_ended", "steps", ["wf_type", "outcome"], registry=registry)
    clock = iter([100.0, 160.0])
    monkeypatch.setattr("grctl.console.rates.time.monotonic", lambda: next(clock))
    rates = Rates(registry)
    rates.sample()
    ended.labels("Orders", "completed").inc(12)
    ended.labels("Orders", "failed").inc(3)
    ended.labels("Refunds", "completed").inc(1)
    per_minute = rates.per_minute()[1]
    assert per_minute[("grctl_engine_steps_ended_total", "Orders", "completed")] == 12.0
    assert per_minute[("grctl_engine_steps_ended_total", "Orders", "failed")] == 3.0
    assert per_minute[("grctl_engine_steps_ended_total", "Refunds", "completed")] == 1.0


def test_stuck_runs_are_counted_apart_and_listed_alone() -> None:
    index = RunIndex(nc=None, js=None, retention=None)  # type: ignore[arg-type]
    for i, stuck in enumerate((None, Stuck(reason="missing_handler", handler="ship", since=T0), None)):
        info = RunInfo(id=f"R{i}", wf_id=f"w-{i}", wf_type="A", status=RunStatus.running,
                       created_at=T0 + timedelta(seconds=i), stuck=stuck)
        index._add(msgspec.msgpack.encode(info), i + 1, "subject")
    only, counted = index.overview(T0, RunFilter(stuck=True), 10)
    assert [msgspec.msgpack.decode(r, type=RunInfo).id for r, _ in only] == ["R1"]
    assert counted == {("A", "running"): 3, ("A", STUCK): 1}
    query = RunsQuery.from_params(MultiDict([("stuck", "1"), ("type", "A")]))
    assert query.filter(T0).stuck and "stuck=1" in query.params() and ("stuck", "1") in query.form_fields()
    assert "stuck" not in query.params(stuck=False)
