"""A minimal fake worker and client speaking the raw protocol to a real engine (no tests here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig
from ulid import ULID

from grctl.models import (
    APIResponse,
    Command,
    CommandKind,
    Directive,
    DirectiveKind,
    EventDef,
    HistoryEvent,
    HistoryKind,
    RegisterCmd,
    RunInfo,
    StartCmd,
    StepPickedUp,
    StepResult,
    WorkflowTypeDef,
    decode_directive,
    decode_history,
    decode_response,
    encode_command,
    encode_directive,
    utcnow,
)
from grctl.nats import direct, subjects
from grctl.nats import jetstream as jsops
from grctl.nats.connection import Connection

T = TypeVar("T")
WORKER_ID = "w_test0.aa@host"


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0,
                     interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


class FakeWorker:
    """Registers types, starts runs, takes worker tasks and reports results, reads the stream."""

    def __init__(self, conn: Connection, worker_id: str = WORKER_ID) -> None:
        self.conn = conn
        self.nc = conn.nc
        self.worker_id = worker_id
        self._subs: dict[str, Any] = {}

    # --- API ------------------------------------------------------------------------------------

    async def request(self, subject: str, kind: CommandKind, msg: msgspec.Struct,
                      timeout: float = 5.0) -> APIResponse:
        cmd = Command(id=str(ULID()), kind=kind, timestamp=utcnow(), msg=msg, sender_id="c_test@host")
        for attempt in range(5):
            try:
                reply = await self.nc.request(subject, encode_command(cmd), timeout=timeout)
                return decode_response(reply.data)
            except nats.errors.NoRespondersError:
                # nats-server sometimes answers "no responders" to the first request after a subscriber
                # on another connection subscribed and flushed; a retry is served (as the SDK retries).
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05)
        raise AssertionError("unreachable")

    async def register(self, wf_type: str, start_step_timeout_ms: int = 0,
                       events: list[EventDef] | None = None) -> APIResponse:
        types = [WorkflowTypeDef(type=wf_type, start_step="start", steps=["second"], events=events or [],
                                 start_step_timeout_ms=start_step_timeout_ms)]
        return await self.request(subjects.API_WORKER, CommandKind.worker_register,
                                  RegisterCmd(worker_id=self.worker_id, types=types))

    async def start(self, wf_type: str, wf_id: str, input: Any = None, timeout: int | None = None,
                    run_id: str | None = None, subject: str | None = None,
                    **ri: Any) -> tuple[APIResponse, RunInfo]:
        info = RunInfo(id=run_id or str(ULID()), wf_id=wf_id, wf_type=wf_type, timeout=timeout, **ri)
        resp = await self.request(subject or subjects.api_workflow(wf_id), CommandKind.run_start,
                                  StartCmd(run_info=info, input=input))
        return resp, info

    # --- worker tasks ---------------------------------------------------------------------------

    async def next_task(self, wf_type: str, timeout: float = 10.0) -> Directive:
        """The next worker task of ``wf_type`` (acked at once: the engine does not care)."""
        psub = self._subs.get(wf_type)
        if psub is None:
            config = ConsumerConfig(durable_name=subjects.worker_consumer(wf_type),
                                    filter_subject=subjects.worker_task_filter(wf_type),
                                    ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
            await self.conn.js.add_consumer(subjects.STREAM, config)
            psub = await self.conn.js.pull_subscribe_bind(subjects.worker_consumer(wf_type),
                                                          stream=subjects.STREAM)
            self._subs[wf_type] = psub
        msgs = await psub.fetch(1, timeout=timeout)
        await msgs[0].ack()
        return decode_directive(msgs[0].data)

    async def publish_directive(self, d: Directive) -> None:
        r = d.run_info
        await jsops.publish(self.nc, subjects.directive(r.wf_type, r.wf_id, r.id), encode_directive(d))

    async def picked_up(self, task: Directive, step_name: str) -> None:
        msg = StepPickedUp(step_name=step_name, worker_id=self.worker_id, timestamp=utcnow())
        d = Directive(id=str(ULID()), timestamp=utcnow(), kind=DirectiveKind.step_picked_up,
                      run_info=task.run_info, msg=msg)
        await self.publish_directive(d)

    async def result(self, task: Directive, next_kind: str, next_msg: dict[str, Any],
                     kv: dict[str, Any] | None = None, id: str | None = None) -> Directive:
        msg = StepResult(processed_msg_kind=str(task.kind), processed_msg=msgspec.to_builtins(task.msg),
                         worker_id=self.worker_id, kv_updates=kv or {}, next_msg_kind=next_kind,
                         next_msg=next_msg, duration_ms=3)
        d = Directive(id=id or str(ULID()), timestamp=utcnow(), kind=DirectiveKind.step_result,
                      run_info=task.run_info, msg=msg)
        await self.publish_directive(d)
        return d

    # --- reading the stream -----------------------------------------------------------------------

    async def history(self, wf_id: str, run_id: str) -> list[HistoryEvent]:
        events: list[HistoryEvent] = []
        seq = 1
        while True:
            stored = await direct.get_next(self.nc, subjects.history(wf_id, run_id), seq)
            if stored is None:
                return events
            events.append(decode_history(stored.data, stored.seq))
            seq = stored.seq + 1

    async def kinds(self, wf_id: str, run_id: str) -> list[HistoryKind]:
        return [e.kind for e in await self.history(wf_id, run_id)]

    async def wait_history(self, wf_id: str, run_id: str, kind: HistoryKind, timeout: float = 10.0,
                           ) -> list[HistoryEvent]:
        async def probe() -> list[HistoryEvent] | None:
            events = await self.history(wf_id, run_id)
            return events if any(e.kind == kind for e in events) else None

        return await eventually(probe, timeout)

    async def count(self, subject: str) -> int:
        n, seq = 0, 1
        while True:
            stored = await direct.get_next(self.nc, subject, seq)
            if stored is None:
                return n
            n, seq = n + 1, stored.seq + 1

    async def run_info(self, wf_id: str) -> RunInfo | None:
        stored = await direct.get_last(self.nc, subjects.latest_run_info(wf_id))
        return msgspec.msgpack.decode(stored.data, type=RunInfo) if stored else None
