"""The engine's request/reply API on ``grctl_api.>`` (PROTOCOL.md §4.4, §5.2), served in the queue group
``grctl_api`` so several engines on one stream answer each request once.

Replies decode with the public SDK 0.3.0 (absent keys omitted). Names that would break subjects are
refused with 4006. ``run.start`` is safe against concurrent starts of one workflow id, in this process
(a per-id lock) and across engines (compare-and-swap on the id's latest run-info record).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from ulid import ULID

from grctl.engine.committer import GroupCommitter
from grctl.engine.registry import Registry
from grctl.engine.store import Outcome, classify
from grctl.models.command import (
    ERR_ALREADY_RUNNING,
    ERR_INTERNAL,
    ERR_INVALID_NAME,
    ERR_RUN_FINISHED,
    ERR_RUN_NOT_FOUND,
    ERR_TYPE_NOT_REGISTERED,
    ERR_UNKNOWN_COMMAND,
    APIError,
    APIResponse,
    CancelCmd,
    CommandKind,
    DescribeCmd,
    EventCmd,
    RegisterCmd,
    StartCmd,
    TerminateCmd,
    decode_command,
    encode_response,
)
from grctl.models.common import RunInfo, utcnow
from grctl.models.directive import (
    Cancel,
    Directive,
    DirectiveKind,
    DirectiveMessage,
    Event,
    Start,
    Terminate,
    encode_directive,
)
from grctl.nats import subjects
from grctl.nats.jetstream import H_EXPECTED_LAST_SUBJECT_SEQ, H_MSG_ID, OutMsg, get_last, publish

log = logging.getLogger(__name__)

H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
MAX_CONCURRENT_REQUESTS = 256
START_ATTEMPTS = 5
API_SETTLE_SECONDS = 0.05

OK = APIResponse(success=True)


def fail(code: int, message: str, detail: str = "") -> APIResponse:
    return APIResponse(success=False, error=APIError(code=code, message=message, detail=detail))


def not_found(detail: str) -> APIResponse:
    return fail(ERR_RUN_NOT_FOUND, "Workflow run not found", detail)


FINISHED = fail(ERR_RUN_FINISHED, "Workflow run has already finished and cannot accept new commands",
                "workflow run is in a terminal state")
NOT_REGISTERED = fail(ERR_TYPE_NOT_REGISTERED, "Workflow type not registered", "workflow type not registered")
UNKNOWN = fail(ERR_UNKNOWN_COMMAND, "Unknown API command", "unknown API command")


def check_names(*named: tuple[str, str]) -> APIResponse | None:
    """A 4006 reply for the first value that cannot be a subject token, else None."""
    for what, value in named:
        reason = subjects.invalid_token_reason(value)
        if reason:
            return fail(ERR_INVALID_NAME, f"Invalid {what}", f"{what} {value!r} {reason}")
    return None


class ApiServer:
    def __init__(self, nc: NATSClient, committer: GroupCommitter, registry: Registry,
                 start_step_timeout_ms: int) -> None:
        self._nc = nc
        self._committer = committer
        self._registry = registry
        self._start_step_timeout_ms = start_step_timeout_ms
        self._sub: Subscription | None = None
        self._gate = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._handlers: dict[CommandKind, Callable[[Any], Awaitable[APIResponse]]] = {
            CommandKind.run_start: self._start,
            CommandKind.run_describe: self._describe,
            CommandKind.run_event: self._event,
            CommandKind.run_cancel: self._cancel,
            CommandKind.run_terminate: self._terminate,
            CommandKind.worker_register: self._register,
        }

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(subjects.API_ALL, queue=subjects.API_QUEUE, cb=self._on_msg)
        await self._nc.flush()  # the server knows the subscription when start() returns...
        # ...but requests from other connections right after that were seen to get "no responders" now
        # and then (nats-server 2.15, ~4 in 100 fresh subscriptions); a short settle time avoids it.
        await asyncio.sleep(API_SETTLE_SECONDS)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests, then let the ones being served finish (within ``timeout``)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribing the API failed: %s", exc)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _on_msg(self, msg: Msg) -> None:
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: Msg) -> None:
        async with self._gate:
            try:
                resp = await self.handle(msg.data)
            except Exception as exc:  # never leave a requester without an answer
                log.exception("API request on %s failed", msg.subject)
                resp = fail(ERR_INTERNAL, str(exc))
        if msg.reply:
            try:
                await msg.respond(encode_response(resp))
            except Exception as exc:
                log.warning("replying on %s failed: %s", msg.subject, exc)

    async def handle(self, data: bytes) -> APIResponse:
        try:
            cmd = decode_command(data)
        except Exception as exc:
            log.warning("undecodable API request: %s", exc)
            return fail(ERR_INTERNAL, str(exc))
        handler = self._handlers.get(cmd.kind)
        if not cmd.id or handler is None:
            return UNKNOWN
        try:
            return await handler(cmd.msg)
        except Exception as exc:
            log.warning("API %s failed: %s", cmd.kind, exc)
            return fail(ERR_INTERNAL, str(exc))

    # --- run.start -----------------------------------------------------------------------------

    async def _start(self, cmd: StartCmd) -> APIResponse:
        ri = cmd.run_info
        bad = check_names(("workflow id", ri.wf_id), ("workflow type", ri.wf_type), ("run id", ri.id))
        if bad:
            return bad
        entry = await self._registry.get(ri.wf_type)
        if entry is None:
            return NOT_REGISTERED
        timeout_ms = entry.start_step_timeout_ms or self._start_step_timeout_ms
        d = Directive(id=str(ULID()), timestamp=utcnow(), kind=DirectiveKind.start, run_info=ri,
                      msg=Start(input=cmd.input, timeout_ms=timeout_ms))
        lock = self._locks.setdefault(ri.wf_id, asyncio.Lock())
        try:
            async with lock:
                return await self._create_run(d)
        finally:
            if not lock.locked() and self._locks.get(ri.wf_id) is lock:
                del self._locks[ri.wf_id]

    async def _create_run(self, d: Directive) -> APIResponse:
        ri = d.run_info
        latest_subject = subjects.latest_run_info(ri.wf_id)
        for _ in range(START_ATTEMPTS):
            latest = await get_last(self._nc, latest_subject)
            if latest is not None:
                current = msgspec.msgpack.decode(latest.data, type=RunInfo)
                if not current.is_terminal:
                    return fail(ERR_ALREADY_RUNNING, "Workflow already has an active run",
                                f"workflow already has an active run: {current.id}")
                if current.id == ri.id:
                    return fail(ERR_ALREADY_RUNNING, "Workflow already has an active run",
                                f"run id {ri.id} was already used")
            cas = {H_EXPECTED_LAST_SUBJECT_SEQ: str(latest.seq if latest else 0),
                   H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT: latest_subject}
            msgs = [
                OutMsg(subjects.run_info(ri.wf_type, ri.wf_id, ri.id), msgspec.msgpack.encode(ri), cas),
                OutMsg(subjects.directive(ri.wf_type, ri.wf_id, ri.id), encode_directive(d),
                       {H_MSG_ID: d.id}),
            ]
            try:
                await self._committer.submit(msgs)
            except Exception as exc:
                if classify(exc) is Outcome.RESNAPSHOT:
                    continue  # another start (or a transition) wrote first: look again
                raise
            return OK
        return fail(ERR_INTERNAL, f"workflow {ri.wf_id} kept changing; start not done")

    # --- describe, event, cancel, terminate -----------------------------------------------------

    async def _latest(self, wf_id: str) -> tuple[RunInfo, bytes] | None:
        stored = await get_last(self._nc, subjects.latest_run_info(wf_id))
        if stored is None:
            return None
        return msgspec.msgpack.decode(stored.data, type=RunInfo), stored.data

    async def _describe(self, cmd: DescribeCmd) -> APIResponse:
        bad = check_names(("workflow id", cmd.wf_id))
        if bad:
            return bad
        found = await self._latest(cmd.wf_id)
        if found is None:
            return not_found("failed to get run info: workflow run not found")
        return APIResponse(success=True, payload=msgspec.Raw(found[1]))

    async def _send(self, wf_id: str, kind: DirectiveKind, msg: DirectiveMessage | None,
                    event_name: str = "", payload: Any = None) -> APIResponse:
        bad = check_names(("workflow id", wf_id))
        if bad:
            return bad
        found = await self._latest(wf_id)
        if found is None:
            return not_found("failed to get run info from store: workflow run not found")
        current = found[0]
        if current.is_terminal:
            return FINISHED
        if msg is None:  # an event: its step timeout comes from the registered event definition
            timeout_ms = await self._registry.event_timeout_ms(current.wf_type, event_name)
            msg = Event(event_name=event_name, payload=payload, timeout_ms=timeout_ms)
        d = Directive(id=str(ULID()), timestamp=utcnow(), kind=kind, run_info=current, msg=msg)
        await publish(self._nc, subjects.directive(current.wf_type, current.wf_id, current.id),
                      encode_directive(d), {H_MSG_ID: d.id})
        return OK

    async def _event(self, cmd: EventCmd) -> APIResponse:
        bad = check_names(("event name", cmd.event_name))
        return bad or await self._send(cmd.wf_id, DirectiveKind.event, None, cmd.event_name, cmd.payload)

    async def _cancel(self, cmd: CancelCmd) -> APIResponse:
        return await self._send(cmd.wf_id, DirectiveKind.cancel, Cancel(reason=cmd.reason or ""))

    async def _terminate(self, cmd: TerminateCmd) -> APIResponse:
        return await self._send(cmd.wf_id, DirectiveKind.terminate, Terminate(reason=cmd.reason or ""))

    # --- worker.register -------------------------------------------------------------------------

    async def _register(self, cmd: RegisterCmd) -> APIResponse:
        for t in cmd.types:
            bad = check_names(("workflow type", t.type), *(("event name", e.name) for e in t.events))
            if bad:
                return bad
        await self._registry.register(cmd.worker_id, cmd.types)
        return OK
