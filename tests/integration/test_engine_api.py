"""The engine's API over real NATS: error codes (docs/protocol.md#api-error-codes; C6, C7, C8, C24), names,
concurrent starts, registration, malformed requests and directives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from support.fake_worker import FakeWorker, eventually

from grctl.engine import Engine
from grctl.models import (
    CommandKind,
    DescribeCmd,
    Directive,
    DirectiveKind,
    Event,
    HistoryKind,
    RegisterCmd,
    RunInfo,
    RunStatus,
    Start,
    decode_response,
    encode_directive,
    utcnow,
)
from grctl.models.command import CancelCmd, EventCmd, TerminateCmd
from grctl.models.records import RegistryEntry
from grctl.nats import direct, subjects
from grctl.nats import jetstream as jsops
from grctl.nats.connection import Connection


@pytest.fixture
async def worker(connection: Connection, engine: Engine) -> AsyncIterator[FakeWorker]:
    w = FakeWorker(connection)
    assert (await w.register("Api")).success
    yield w


async def describe(worker: FakeWorker, wf_id: str):
    return await worker.request(subjects.api_workflow(wf_id), CommandKind.run_describe,
                                DescribeCmd(wf_id=wf_id))


async def test_c6_duplicate_start_then_new_run_after_completion(worker: FakeWorker) -> None:
    resp, first = await worker.start("Api", "wf-dup")
    assert resp.success
    resp, _ = await worker.start("Api", "wf-dup")
    assert not resp.success and resp.error.code == 4001
    assert resp.error.message == "Workflow already has an active run"
    assert resp.error.detail == f"workflow already has an active run: {first.id}"
    task = await worker.next_task("Api")
    await worker.result(task, "complete", {"result": 1})
    await worker.wait_history("wf-dup", first.id, HistoryKind.run_completed)
    resp, second = await worker.start("Api", "wf-dup")
    assert resp.success
    task = await worker.next_task("Api")
    assert task.run_info.id == second.id


async def test_c7_unregistered_type_writes_nothing(worker: FakeWorker) -> None:
    resp, _ = await worker.start("Nobody", "wf-none")
    assert not resp.success
    assert (resp.error.code, resp.error.message, resp.error.detail) == (
        4004, "Workflow type not registered", "workflow type not registered")
    assert await worker.run_info("wf-none") is None
    assert await worker.count("grctl_directive.*.wf-none.>") == 0


async def test_c8_describe(worker: FakeWorker) -> None:
    resp, info = await worker.start("Api", "wf-desc", input={"a": 1})
    await worker.next_task("Api")
    resp = await describe(worker, "wf-desc")
    assert resp.success and resp.error is None
    got = resp.run_info()
    assert (got.id, got.wf_id, got.wf_type, got.status) == (info.id, "wf-desc", "Api", RunStatus.running)
    assert got.started_at is not None
    missing = await describe(worker, "wf-unknown")
    assert not missing.success and missing.payload is None
    assert missing.error.code == 4002
    assert missing.error.detail == "failed to get run info: workflow run not found"
    for kind, msg in [(CommandKind.run_cancel, CancelCmd(wf_id="wf-unknown")),
                      (CommandKind.run_terminate, TerminateCmd(wf_id="wf-unknown")),
                      (CommandKind.run_event, EventCmd(wf_id="wf-unknown", event_name="e"))]:
        resp = await worker.request(subjects.api_workflow("wf-unknown"), kind, msg)
        assert resp.error.code == 4002
        assert resp.error.detail == "failed to get run info from store: workflow run not found"


async def test_reply_bytes_leave_out_absent_keys(worker: FakeWorker) -> None:
    """The public SDK decodes these replies: no payload key on plain success, no error key on success."""
    inner = msgspec.msgpack.encode({"wf_id": "nope"})
    cmd = msgspec.msgpack.encode({"id": "C1", "k": "run.describe", "m": inner, "t": utcnow(), "s": "c_x@h"})
    raw = (await worker.nc.request(subjects.api_workflow("nope"), cmd, timeout=5)).data
    assert msgspec.msgpack.decode(raw) == {"success": False, "error": {
        "code": 4002, "message": "Workflow run not found",
        "detail": "failed to get run info: workflow run not found"}}
    ok = await worker.register("Api")
    assert ok.success


async def test_c24_commands_and_late_directives_on_a_finished_run(worker: FakeWorker, engine: Engine) -> None:
    _, info = await worker.start("Api", "wf-done")
    task = await worker.next_task("Api")
    await worker.result(task, "complete", {"result": "ok"})
    await worker.wait_history("wf-done", info.id, HistoryKind.run_completed)
    for kind, msg in [(CommandKind.run_cancel, CancelCmd(wf_id="wf-done", reason="late")),
                      (CommandKind.run_terminate, TerminateCmd(wf_id="wf-done")),
                      (CommandKind.run_event, EventCmd(wf_id="wf-done", event_name="e"))]:
        resp = await worker.request(subjects.api_workflow("wf-done"), kind, msg)
        assert not resp.success and resp.error.code == 4003
        assert resp.error.detail == "workflow run is in a terminal state"
    before = await worker.history("wf-done", info.id)
    await worker.picked_up(task, "start")  # a late directive for the finished run
    await worker.result(task, "complete", {"result": "again"})
    await _directives_drained(worker)
    assert len(await worker.history("wf-done", info.id)) == len(before)


async def _directives_drained(worker: FakeWorker) -> None:
    async def drained() -> bool:
        ci = await worker.conn.js.consumer_info(subjects.STREAM, subjects.DIRECTIVE_CONSUMER)
        return ci.num_pending == 0 and ci.num_ack_pending == 0

    await eventually(drained)


async def test_invalid_names_are_refused(worker: FakeWorker) -> None:
    anywhere = "grctl_api.workflow.x"  # the command kind decides, not the subject
    resp, _ = await worker.start("Api", "bad.id", subject=anywhere)
    assert resp.error.code == 4006 and "workflow id" in resp.error.detail
    resp, _ = await worker.start("Api", "bad id", subject=anywhere)
    assert resp.error.code == 4006
    resp, _ = await worker.start("Bad>Type", "wf-ok", subject=anywhere)
    assert resp.error.code == 4006 and "workflow type" in resp.error.detail
    resp, _ = await worker.start("Api", "wf-ok", run_id="r*1")
    assert resp.error.code == 4006
    resp = await worker.request(subjects.api_workflow("wf-x"), CommandKind.run_event,
                                EventCmd(wf_id="wf-x", event_name="a>b"))
    assert resp.error.code == 4006 and "event name" in resp.error.detail
    resp = await worker.request(subjects.API_WORKER, CommandKind.worker_register,
                                RegisterCmd(worker_id="w", types=[RegistryEntry_type("has.dot")]))
    assert resp.error.code == 4006


def RegistryEntry_type(name: str):
    from grctl.models import WorkflowTypeDef

    return WorkflowTypeDef(type=name)


async def test_registration_writes_the_catalog_and_an_empty_one_nothing(worker: FakeWorker) -> None:
    stored = await direct.get_last(worker.nc, subjects.registry("Api"))
    entry = msgspec.msgpack.decode(stored.data, type=RegistryEntry)
    assert entry.worker_id == worker.worker_id and entry.start_step == "start" and entry.steps == ["second"]
    assert stored.headers.get("Nats-Rollup") == "sub"
    before = (await worker.conn.js.stream_info(subjects.STREAM)).state.messages
    resp = await worker.request(subjects.API_WORKER, CommandKind.worker_register,
                                RegisterCmd(worker_id="w", types=[]))
    assert resp.success
    assert (await worker.conn.js.stream_info(subjects.STREAM)).state.messages == before


async def test_unknown_and_malformed_requests_get_answers(worker: FakeWorker) -> None:
    raw = await worker.nc.request("grctl_api.workflow.x", b"\xc1garbage", timeout=5)
    resp = decode_response(raw.data)
    assert not resp.success and resp.error.code == 5000
    cmd = msgspec.msgpack.encode({"id": "C1", "k": "worker.terminate_run",
                                  "m": msgspec.msgpack.encode({"run_id": "r"}), "t": utcnow(), "s": "c@h"})
    resp = decode_response((await worker.nc.request("grctl_api.workflow.x", cmd, timeout=5)).data)
    assert (resp.error.code, resp.error.message) == (4000, "Unknown API command")
    resp, _ = await worker.start("Api", "wf-after-garbage")
    assert resp.success, "the engine keeps serving"


async def test_malformed_directives_are_dropped_and_the_engine_keeps_serving(worker: FakeWorker) -> None:
    await jsops.publish(worker.nc, "grctl_directive.Api.wf-m.r1", b"\xc1not msgpack")
    await jsops.publish(worker.nc, "grctl_directive.Api.wf-m.r1",
                        msgspec.msgpack.encode({"id": "x", "k": "no_such_kind", "t": utcnow(),
                                                "r": {"id": "r1", "wf_id": "wf-m", "wf_type": "Api"}}))
    bad_ids = Directive(id="d-bad", timestamp=utcnow(), kind=DirectiveKind.start,
                        run_info=RunInfo(id="r1", wf_id="has.dot", wf_type="Api"), msg=Start())
    await jsops.publish(worker.nc, "grctl_directive.Api.wf-m.r1", encode_directive(bad_ids))
    await _directives_drained(worker)
    _, info = await worker.start("Api", "wf-m2")
    task = await worker.next_task("Api")
    await worker.result(task, "complete", {"result": None})
    await worker.wait_history("wf-m2", info.id, HistoryKind.run_completed)


async def test_redelivered_start_does_not_dispatch_twice(worker: FakeWorker) -> None:
    _, info = await worker.start("Api", "wf-redo")
    task = await worker.next_task("Api")
    # The same start directive once more (under another message id, as after the dedup window).
    again = Directive(id=task.id, timestamp=utcnow(), kind=DirectiveKind.start, run_info=info,
                      msg=Start(input=None, timeout_ms=1000))
    await jsops.publish(worker.nc, subjects.directive("Api", "wf-redo", info.id), encode_directive(again))
    await _directives_drained(worker)
    assert await worker.count(subjects.worker_task("Api", "wf-redo", info.id)) == 1
    assert (await worker.kinds("wf-redo", info.id)).count(HistoryKind.run_started) == 1


async def test_concurrent_starts_of_one_workflow_id_across_two_engines(worker: FakeWorker,
                                                                       nats_url: str) -> None:
    other_conn = await Connection.connect([nats_url])
    other = Engine(other_conn)
    await other.start()
    try:
        results = await asyncio.gather(*(worker.start("Api", "wf-race") for _ in range(12)))
        winners = [info for resp, info in results if resp.success]
        assert len(winners) == 1
        assert all(resp.error.code == 4001 for resp, _ in results if not resp.success)
        task = await worker.next_task("Api")
        assert task.run_info.id == winners[0].id
        assert await worker.count("grctl_directive.*.wf-race.>") >= 1
        assert await worker.count("grctl_run.*.wf-race.*.info") >= 1
        first = await direct.get_next(worker.nc, "grctl_run.*.wf-race.*.info", 1)
        assert msgspec.msgpack.decode(first.data, type=RunInfo).id == winners[0].id
    finally:
        await other.stop()
        await other_conn.close()


async def test_a_directive_delivered_twice_is_applied_once(worker: FakeWorker) -> None:
    """As after an engine died between its commit and its ack: the second copy is a duplicate commit."""
    _, info = await worker.start("Api", "wf-twice")
    task = await worker.next_task("Api")
    event = Directive(id="ev-twice", timestamp=utcnow(), kind=DirectiveKind.event,
                      run_info=task.run_info, msg=Event(event_name="ping", payload=1))
    subject = subjects.directive("Api", "wf-twice", info.id)
    for _ in range(2):  # no Nats-Msg-Id on the publish: the stream keeps both copies
        await jsops.publish(worker.nc, subject, encode_directive(event))
    await _directives_drained(worker)
    assert (await worker.kinds("wf-twice", info.id)).count(HistoryKind.event_received) == 1
    assert await worker.count(subjects.inbox("wf-twice")) == 1
