"""Engine-internal rules (docs/protocol.md#conformance-scenarios) through a real engine and nats-server,
driven by a fake worker: a fail after a completed step (C38e), cancel and terminate rules (C39), the
parent-notification records (C40), a fired step timer (C42), and a residue purge that touches only its
own run (docs/protocol.md#cleanup-and-retention)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from support.fake_worker import FakeWorker, eventually

from grctl.engine import Engine
from grctl.models import (
    Cancel,
    CommandKind,
    Complete,
    Directive,
    DirectiveKind,
    Fail,
    HistoryKind,
    RunStatus,
    Terminate,
    decode_directive,
    utcnow,
)
from grctl.models.command import CancelCmd, EventCmd, TerminateCmd
from grctl.models.common import ErrorDetails
from grctl.models.records import BG_PAYLOAD_TYPES, BackgroundTask, BgTaskKind, PurgeRunResidue
from grctl.nats import direct, subjects
from grctl.nats import jetstream as jsops
from grctl.nats.connection import Connection

H = HistoryKind
ERROR = {"type": "ValueError", "message": "step broke", "stack_trace": "tb", "qualified_type": ""}
NO_WAIT_TIMEOUT = {"timeout_ms": 0, "timeout_step_name": ""}


@pytest.fixture
async def worker(connection: Connection, engine: Engine) -> AsyncIterator[FakeWorker]:
    w = FakeWorker(connection)
    for wf_type in ("Rule", "Kid"):
        assert (await w.register(wf_type)).success
    yield w


async def command(worker: FakeWorker, kind: CommandKind, msg: msgspec.Struct) -> None:
    resp = await worker.request(subjects.api_workflow(msg.wf_id), kind, msg)  # type: ignore[attr-defined]
    assert resp.success, resp


async def bg_tasks(worker: FakeWorker) -> list[tuple[int, BackgroundTask, Any]]:
    """Every background task in the stream: (sequence, task, decoded payload)."""
    out, seq = [], 1
    while (stored := await direct.get_next(worker.nc, subjects.BG_TASK, seq)) is not None:
        task = msgspec.msgpack.decode(stored.data, type=BackgroundTask)
        out.append((stored.seq, task, msgspec.msgpack.decode(task.payload, type=BG_PAYLOAD_TYPES[task.kind])))
        seq = stored.seq + 1
    return out


async def tasks_of(worker: FakeWorker, kind: BgTaskKind, **fields: str) -> list[Any]:
    return [p for _, t, p in await bg_tasks(worker)
            if t.kind == kind and all(getattr(p, k) == v for k, v in fields.items())]


async def test_c38e_fail_after_a_completed_step(worker: FakeWorker) -> None:
    _, info = await worker.start("Rule", "wf-fail-next")
    task = await worker.next_task("Rule")
    await worker.picked_up(task, "start")
    await worker.result(task, "fail", {"error": ERROR})
    events = await worker.wait_history("wf-fail-next", info.id, H.run_failed)
    assert [e.kind for e in events] == [H.run_started, H.step_started, H.step_completed, H.run_failed]
    assert events[-1].msg.error.type == "ValueError"
    stored = await direct.get_last(worker.nc, subjects.run_error("wf-fail-next", info.id))
    assert stored is not None
    assert msgspec.msgpack.decode(stored.data, type=ErrorDetails).message == "step broke"
    assert (await worker.run_info("wf-fail-next")).status == RunStatus.failed


async def test_c39_a_second_cancel_replaces_the_first_and_a_failed_step_wins(worker: FakeWorker) -> None:
    _, replaced = await worker.start("Rule", "wf-cancel-twice")
    task = await worker.next_task("Rule")
    await worker.picked_up(task, "start")
    for reason in ("first", "second"):
        await command(worker, CommandKind.run_cancel, CancelCmd(wf_id="wf-cancel-twice", reason=reason))
    await eventually(lambda: _count(worker, "wf-cancel-twice", replaced.id, H.run_cancel_received, 2))
    await worker.result(task, "complete", {"result": "ignored"})
    events = await worker.wait_history("wf-cancel-twice", replaced.id, H.run_cancelled)
    assert events[-1].msg.reason == "second" and H.run_completed not in [e.kind for e in events]

    _, failing = await worker.start("Rule", "wf-cancel-fail")
    task = await worker.next_task("Rule")
    await worker.picked_up(task, "start")
    await command(worker, CommandKind.run_cancel, CancelCmd(wf_id="wf-cancel-fail", reason="too late"))
    await worker.wait_history("wf-cancel-fail", failing.id, H.run_cancel_received)
    await worker.result(task, "fail_step", {"step_name": "start", "error": ERROR})
    events = await worker.wait_history("wf-cancel-fail", failing.id, H.run_failed)
    assert [e.kind for e in events][-2:] == [H.step_failed, H.run_failed]
    assert H.run_cancelled not in [e.kind for e in events]
    assert events[-1].msg.error.message == "step broke"


async def _count(worker: FakeWorker, wf_id: str, run_id: str, kind: HistoryKind, n: int) -> bool:
    return (await worker.kinds(wf_id, run_id)).count(kind) >= n


async def test_c39_terminate_tells_a_worker_only_when_one_is_known(worker: FakeWorker) -> None:
    _, unknown = await worker.start("Rule", "wf-term-nobody")
    await worker.next_task("Rule")  # taken, but never reported as picked up
    _, known = await worker.start("Rule", "wf-term-known")
    task = await worker.next_task("Rule")
    await worker.picked_up(task, "start")
    await worker.wait_history("wf-term-known", known.id, H.step_started)
    for wf_id in ("wf-term-nobody", "wf-term-known"):
        await command(worker, CommandKind.run_terminate, TerminateCmd(wf_id=wf_id, reason="stop"))
    for wf_id, info in (("wf-term-nobody", unknown), ("wf-term-known", known)):
        events = await worker.wait_history(wf_id, info.id, H.run_terminated)
        assert events[-1].msg.reason == "stop"
        assert await worker.count(f"grctl_timers.{wf_id}.retention.{info.id}") == 1
    assert await tasks_of(worker, BgTaskKind.worker_terminate_run, run_id=unknown.id) == []
    told = await tasks_of(worker, BgTaskKind.worker_terminate_run, run_id=known.id)
    assert [(t.worker_id, t.run_id) for t in told] == [(worker.worker_id, known.id)]


async def test_c39_directives_for_a_finished_run_write_nothing(worker: FakeWorker) -> None:
    _, info = await worker.start("Rule", "wf-over")
    task = await worker.next_task("Rule")
    await worker.result(task, "complete", {"result": "ok"})
    before = await worker.wait_history("wf-over", info.id, H.run_completed)
    ended = await worker.run_info("wf-over")
    late = [(DirectiveKind.complete, Complete(result="again")),
            (DirectiveKind.fail, Fail(error=ErrorDetails(type="Late", message="late"))),
            (DirectiveKind.cancel, Cancel(reason="late")),
            (DirectiveKind.terminate, Terminate(reason="late"))]

    for n, (kind, msg) in enumerate(late):  # straight to the engine, past the API's 4003
        await worker.publish_directive(Directive(id=f"late-{n}", timestamp=utcnow(), kind=kind,
                                                 run_info=info, msg=msg))

    async def drained() -> bool:
        ci = await worker.conn.js.consumer_info(subjects.STREAM, subjects.DIRECTIVE_CONSUMER)
        return ci.num_pending == 0 and ci.num_ack_pending == 0

    await eventually(drained)
    assert await worker.history("wf-over", info.id) == before
    assert await worker.run_info("wf-over") == ended
    assert await tasks_of(worker, BgTaskKind.purge_run_residue, run_id=info.id) == []  # no inbox to purge


async def test_c40_parent_notification_records(worker: FakeWorker) -> None:
    _, parent = await worker.start("Rule", "wf-parent")
    await worker.result(await worker.next_task("Rule"), "wait", NO_WAIT_TIMEOUT)
    await worker.wait_history("wf-parent", parent.id, H.wait_started)
    family = {"parent_wf_id": "wf-parent", "parent_wf_type": "Rule", "parent_run_id": parent.id}

    async def child(wf_id: str, callback: str | None = "on_done", **parent_fields: str) -> Directive:
        await worker.start("Kid", wf_id, parent_callback_step=callback, **parent_fields)
        return await worker.next_task("Kid")

    await worker.result(await child("kid-ok", **family), "complete", {"result": {"n": 1}})
    await worker.result(await child("kid-failed", **family), "fail_step",
                        {"step_name": "start", "error": ERROR})
    await worker.result(await child("kid-cancel-waiting", **family), "wait", NO_WAIT_TIMEOUT)
    await worker.wait_history("kid-cancel-waiting", (await worker.run_info("kid-cancel-waiting")).id,
                              H.wait_started)
    await command(worker, CommandKind.run_cancel, CancelCmd(wf_id="kid-cancel-waiting", reason="not needed"))
    deferred = await child("kid-cancel-deferred", **family)
    await worker.picked_up(deferred, "start")
    await command(worker, CommandKind.run_cancel, CancelCmd(wf_id="kid-cancel-deferred", reason="later"))
    await worker.wait_history("kid-cancel-deferred", deferred.run_info.id, H.run_cancel_received)
    await worker.result(deferred, "complete", {"result": "ignored"})
    await worker.result(await child("kid-orphan"), "complete", {"result": 1})
    await worker.result(await child("kid-no-callback", callback=None, **family), "complete", {"result": 1})

    async def notified() -> dict[str, Any] | None:
        found = {p.child_wf_id: p for p in await tasks_of(worker, BgTaskKind.notify_parent_complete)}
        return found if len(found) >= 4 else None

    found = await eventually(notified)
    assert sorted(found) == ["kid-cancel-deferred", "kid-cancel-waiting", "kid-failed", "kid-ok"]
    assert all((p.parent_wf_id, p.parent_run_id, p.step_name) == ("wf-parent", parent.id, "on_done")
               for p in found.values())
    ok = found["kid-ok"]
    assert (ok.status, ok.result, ok.error) == (RunStatus.completed, {"n": 1}, None)
    failed = found["kid-failed"]
    assert (failed.status, failed.error.type, failed.error.message) == (RunStatus.failed, "ValueError",
                                                                        "step broke")
    for wf_id, reason in (("kid-cancel-waiting", "not needed"), ("kid-cancel-deferred", "later")):
        p = found[wf_id]
        assert (p.status, p.result, p.error.type, p.error.message) == (RunStatus.cancelled, None, "Cancelled",
                                                                       reason)
    for wf_id in ("kid-orphan", "kid-no-callback"):  # ended, but nobody to notify
        await worker.wait_history(wf_id, (await worker.run_info(wf_id)).id, H.run_completed)
    assert len(await tasks_of(worker, BgTaskKind.notify_parent_complete)) == 4


async def test_c42_a_fired_step_timer_becomes_a_step_timeout_for_the_start_step(
        connection: Connection, engine: Engine) -> None:
    worker = FakeWorker(connection)
    await worker.register("Tmr", start_step_timeout_ms=200)
    seen: list[Directive] = []

    async def on_directive(msg: Any) -> None:
        seen.append(decode_directive(msg.data))

    sub = await connection.nc.subscribe("grctl_directive.Tmr.wf-tmr.>", cb=on_directive)
    try:
        _, info = await worker.start("Tmr", "wf-tmr")
        start = await worker.next_task("Tmr")
        await worker.picked_up(start, "start")  # taken by a worker: its time runs
        events = await worker.wait_history("wf-tmr", info.id, H.run_failed, timeout=5)
        assert [e.kind for e in events] == [H.run_started, H.step_started, H.step_timeout, H.run_failed]
        timeouts = [d for d in seen if d.kind == DirectiveKind.step_timeout]
        assert len(timeouts) == 1
        assert (timeouts[0].msg.step_name, timeouts[0].msg.original_directive_id) == ("start", start.id)
        assert timeouts[0].run_info.id == info.id
    finally:
        await sub.unsubscribe()


async def residue(worker: FakeWorker, wf_id: str, run_id: str) -> dict[str, int]:
    return {"directives": await worker.count(f"grctl_directive.*.{wf_id}.{run_id}"),
            "tasks": await worker.count(f"grctl_worker_task.*.{wf_id}.{run_id}"),
            "timers": await worker.count(f"grctl_timers.{wf_id}.*.*.>"),  # not the retention schedule
            "inbox": await worker.count(subjects.inbox(wf_id))}


async def test_a_late_residue_purge_leaves_the_next_run_of_the_id_alone(worker: FakeWorker,
                                                                       engine: Engine) -> None:
    _, first = await worker.start("Rule", "wf-scope")
    first_task = await worker.next_task("Rule")
    # An event reaches the inbox while the step runs, and is never consumed: the end purges the inbox.
    await command(worker, CommandKind.run_event, EventCmd(wf_id="wf-scope", event_name="unread"))
    await worker.wait_history("wf-scope", first.id, H.event_received)
    await worker.result(first_task, "complete", {"result": 1})
    await worker.wait_history("wf-scope", first.id, H.run_completed)

    async def written() -> list[tuple[int, PurgeRunResidue]]:
        return [(seq, p) for seq, t, p in await bg_tasks(worker)
                if t.kind == BgTaskKind.purge_run_residue and p.run_id == first.id]

    [(purge_seq, purge)] = await eventually(written)

    async def purged() -> bool:
        await engine.sweeper.sweep()
        return await residue(worker, "wf-scope", first.id) == {"directives": 0, "tasks": 0, "timers": 0,
                                                                 "inbox": 0}

    await eventually(purged)

    # The next run of the id: a dispatched start step, its timer, and an event waiting in the inbox.
    _, second = await worker.start("Rule", "wf-scope")
    task = await worker.next_task("Rule")
    await command(worker, CommandKind.run_event, EventCmd(wf_id="wf-scope", event_name="finish"))
    await worker.wait_history("wf-scope", second.id, H.event_received)
    before = await residue(worker, "wf-scope", second.id)
    assert before["tasks"] == 1 and before["timers"] >= 1 and before["inbox"] == 1

    # The first run's purge, had it run only now (as it was committed: inbox up to its own sequence).
    late = msgspec.structs.replace(purge, inbox_up_to_seq=purge.inbox_up_to_seq or purge_seq)
    await jsops.publish(worker.nc, subjects.BG_TASK, msgspec.msgpack.encode(
        BackgroundTask(kind=BgTaskKind.purge_run_residue, deduplication_id="late-purge",
                       payload=msgspec.msgpack.encode(late))))

    async def drained() -> bool:
        ci = await worker.conn.js.consumer_info(subjects.STREAM, subjects.BG_TASK_CONSUMER)
        return ci.num_pending == 0 and ci.num_ack_pending == 0

    await eventually(drained)  # acknowledged: the late purge has been done
    assert await residue(worker, "wf-scope", second.id) == before
    await worker.result(task, "wait", NO_WAIT_TIMEOUT)
    event_step = await worker.next_task("Rule")
    assert (event_step.kind, event_step.msg.event_name) == (DirectiveKind.event, "finish")
    await worker.result(event_step, "complete", {"result": 2})
    events = await worker.wait_history("wf-scope", second.id, H.run_completed)
    assert events[-1].msg.result == 2
