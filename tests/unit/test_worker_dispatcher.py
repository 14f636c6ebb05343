"""The dispatcher's ack decisions and per-run ordering: one runner per run at a time, a redelivery of a
running dispatch settles with it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from support.fakes import FakeMsg, RecordingPublisher, handled

from grctl.models.common import RunInfo, RunStatus, utcnow
from grctl.models.directive import Cancel, Directive, DirectiveKind, Start, Step, encode_directive
from grctl.worker.context import Context
from grctl.worker.dispatcher import Dispatcher
from grctl.workflow import Workflow

GATES: dict[str, asyncio.Event] = {}
ORDER: list[str] = []

wf = Workflow("T")


@wf.start()
async def start(ctx: Context) -> Directive:
    ORDER.append("start:begin")
    await GATES["start"].wait()
    ORDER.append("start:end")
    return ctx.next.step(second)


@wf.step()
async def second(ctx: Context) -> Directive:
    ORDER.append("second")
    return ctx.next.complete("ok")


@wf.step()
async def forever(ctx: Context) -> Directive:
    await asyncio.sleep(3600)
    return ctx.next.complete(None)


def task(kind: DirectiveKind, msg: Any, directive_id: str, wf_type: str = "T") -> bytes:
    ri = RunInfo(id="R1", wf_id="W1", wf_type=wf_type, status=RunStatus.running)
    return encode_directive(Directive(id=directive_id, timestamp=utcnow(), kind=kind, run_info=ri, msg=msg))


def dispatcher() -> tuple[Dispatcher, RecordingPublisher]:
    pub = RecordingPublisher()
    d = Dispatcher({"T": wf}, None, pub, logging.getLogger("t"))  # type: ignore[arg-type]
    return d, pub


async def test_next_step_waits_for_the_previous_runner_and_a_redelivery_settles_with_it() -> None:
    GATES["start"] = asyncio.Event()
    ORDER.clear()
    d, pub = dispatcher()
    first = FakeMsg(task(DirectiveKind.start, Start(), "D1"))
    duplicate = FakeMsg(task(DirectiveKind.start, Start(), "D1"), num_delivered=2)
    nxt = FakeMsg(task(DirectiveKind.step, Step(step_name="second"), "D2"))
    handling = [asyncio.create_task(handled(d.handle, first))]
    await asyncio.sleep(0.05)
    # Same dispatch, still running here (its in-progress acks were lost): not run a second time.
    handling.append(asyncio.create_task(handled(d.handle, duplicate)))
    handling.append(asyncio.create_task(handled(d.handle, nxt)))  # next dispatch arrives early
    await asyncio.sleep(0.05)
    assert ORDER == ["start:begin"] and nxt.settled == [] and duplicate.settled == []
    GATES["start"].set()
    await asyncio.gather(*handling)
    assert ORDER == ["start:begin", "start:end", "second"]
    # The server takes the ack of the newest delivery: that is the one settled.
    assert duplicate.settled == ["ack"] and first.settled == [] and nxt.settled == ["ack"]
    assert [str(x.msg.next_msg_kind) for x in pub.directives if x.kind == DirectiveKind.step_result] == \
        ["step", "complete"]


async def test_malformed_and_foreign_tasks() -> None:
    d, _ = dispatcher()
    garbage = FakeMsg(b"\xc1garbage")
    not_a_task = FakeMsg(task(DirectiveKind.cancel, Cancel(), "D9"))
    foreign = FakeMsg(task(DirectiveKind.start, Start(), "D8", wf_type="Other"))
    for msg in (garbage, not_a_task, foreign):
        await handled(d.handle, msg)
    assert garbage.settled == ["term"] and not_a_task.settled == ["term"] and foreign.settled == ["nak"]


async def test_terminate_acks_and_shutdown_naks() -> None:
    d, pub = dispatcher()
    terminated = FakeMsg(task(DirectiveKind.step, Step(step_name="forever"), "D1"))
    job = asyncio.create_task(handled(d.handle, terminated))
    await asyncio.sleep(0.05)
    assert d.running_runs == ["R1"]
    assert d.terminate_run("R1") is True and d.terminate_run("nope") is False
    await job
    assert terminated.settled == ["ack"]
    assert [str(x.kind) for x in pub.directives] == ["step_picked_up"]  # no result

    shutdown = FakeMsg(task(DirectiveKind.step, Step(step_name="forever"), "D2"))
    job = asyncio.create_task(handled(d.handle, shutdown))
    await asyncio.sleep(0.05)
    assert d.cancel_all() == 1
    await job
    assert shutdown.settled == ["nak"]


async def test_redelivery_counts_as_an_attempt() -> None:
    d, pub = dispatcher()
    redelivered = FakeMsg(task(DirectiveKind.step, Step(step_name="second"), "D1"), num_delivered=3)
    await handled(d.handle, redelivered)
    picked = [x for x in pub.directives if x.kind == DirectiveKind.step_picked_up]
    assert len(picked) == 1  # history_seq_id 0: nothing to replay, so the pick-up is reported
