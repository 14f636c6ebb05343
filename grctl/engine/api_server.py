"""The engine's request/reply API on ``grctl_api.>``, served in the queue group ``grctl_api`` so several
engines on one stream answer each request once.

Replies decode with the public SDK 0.3.0 (absent keys omitted). Names that would break subjects are
refused with 4006 before anything is read or written.

Lookups by workflow id read one exact subject, ``grctl_latest.{wf_id}`` (ours: the id's latest run),
then the run's own run-info record, so their cost does not grow with the number of runs stored.
``run.start`` writes the pointer with a compare-and-swap on that subject: concurrent starts of one id
(in this engine, serialised per id; across engines, by the CAS) create one run. A start whose run id
already exists is answered with success: a client that retries after a lost reply gets its run, never
a second one. Events, cancels and terminates take their directive id from the command id, so a retried
command is stored once (the stream's duplicate window).

Admission: at most ``MAX_CONCURRENT_REQUESTS`` requests are worked on at once; a request that cannot
get a slot within ``QUEUE_WAIT`` seconds (or arrives when ``MAX_QUEUED`` are already waiting) is
answered at once with 5030 "busy", which our client retries after a pause: overload shows as latency,
not as timeouts and duplicate work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from grctl import settings
from grctl.engine import api_scope
from grctl.engine.catalog import CatalogCheck
from grctl.engine.committer import GroupCommitter
from grctl.engine.delayed import delayed_start
from grctl.engine.keyed import KeyedSerializer
from grctl.engine.persistence import CommitVerdict, classify
from grctl.engine.registry import Registry
from grctl.engine.replies import (
    BUSY,
    FINISHED,
    NOT_REGISTERED,
    UNKNOWN,
    check_names,
    directive_id,
    fail,
    not_found,
)
from grctl.engine.retry import Retrier
from grctl.engine.runindex import RunIndex
from grctl.models.command import (
    ERR_ALREADY_RUNNING,
    ERR_INTERNAL,
    ERR_INVALID_NAME,
    ERR_STORAGE_FULL,
    H_OUTCOME,
    OUTCOME_NOTIFY,
    APIResponse,
    CancelCmd,
    Command,
    CommandKind,
    DelayedStartCmd,
    DescribeCmd,
    EventCmd,
    ListCmd,
    RegisterCmd,
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
from grctl.models.records import LatestRun
from grctl.nats import subjects
from grctl.nats.direct import StoredMsg, get_last
from grctl.nats.jetstream import H_EXPECTED_LAST_SUBJECT_SEQ, H_MSG_ID, OutMsg, publish, storage_full
from grctl.nats.retry import is_transient
from grctl.ops import metrics

log = logging.getLogger(__name__)


OK = APIResponse(success=True)
_latest_decoder = msgspec.msgpack.Decoder(LatestRun)
_info_decoder = msgspec.msgpack.Decoder(RunInfo)



class ApiServer:
    def __init__(self, nc: NATSClient, committer: GroupCommitter, registry: Registry,
                 start_step_timeout_ms: int, runs: RunIndex | None = None) -> None:
        self._nc = nc
        self._committer = committer
        self._registry = registry
        self._start_step_timeout_ms = start_step_timeout_ms
        self._sub: Subscription | None = None
        self._gate = asyncio.Semaphore(settings.MAX_CONCURRENT_REQUESTS)
        self._waiting = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_id = KeyedSerializer()
        self._runs = runs
        self._handlers: dict[CommandKind, Callable[[Command], Awaitable[APIResponse]]] = {
            CommandKind.run_start: self._start,
            CommandKind.run_describe: self._describe,
            CommandKind.run_event: self._event,
            CommandKind.run_cancel: self._cancel,
            CommandKind.run_terminate: self._terminate,
            CommandKind.worker_register: self._register,
            CommandKind.run_list: self._list,
            CommandKind.run_retry: Retrier(nc, committer, self._per_id).command,
            CommandKind.catalog_check: self._catalog,
        }

    def serve(self, kind: CommandKind, handler: Callable[[Command], Awaitable[APIResponse]]) -> None:
        """Answer commands of ``kind`` with ``handler`` (ours: the schedule commands)."""
        self._handlers[kind] = handler

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(subjects.API_ALL, queue=subjects.API_QUEUE, cb=self._on_msg,
                                             pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self._nc.flush()  # the server knows the subscription when start() returns...
        # ...but requests from other connections right after that were seen to get "no responders" now
        # and then (nats-server 2.15, ~4 in 100 fresh subscriptions); a short settle time avoids it.
        await asyncio.sleep(settings.API_SETTLE)

    async def stop(self, timeout: float = settings.COMPONENT_STOP_TIMEOUT) -> None:
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
        arrived = time.perf_counter()
        resp = await self._admitted(msg)
        metrics.api_answered(msg.data, resp, time.perf_counter() - arrived)
        if msg.reply:
            headers = {H_OUTCOME: OUTCOME_NOTIFY} if resp.success else None
            try:
                await self._nc.publish(msg.reply, encode_response(resp), headers=headers)
            except Exception as exc:
                log.warning("replying on %s failed: %s", msg.subject[:128], exc)

    async def _admitted(self, msg: Msg) -> APIResponse:
        """The reply to ``msg``, or BUSY when no slot frees up in time."""
        if self._waiting >= settings.MAX_QUEUED_REQUESTS:
            return BUSY
        self._waiting += 1
        arrived = time.monotonic()
        try:
            await asyncio.wait_for(self._gate.acquire(), settings.REQUEST_QUEUE_WAIT)
        except TimeoutError:
            return BUSY
        finally:
            self._waiting -= 1
        try:
            if time.monotonic() - arrived > settings.REQUEST_QUEUE_WAIT:
                return BUSY
            return await self.handle(msg.data, msg.subject)
        except Exception as exc:  # never leave a requester without an answer
            log.exception("API request on %s failed", msg.subject[:128])
            return fail(ERR_INTERNAL, str(exc))
        finally:
            self._gate.release()

    async def handle(self, data: bytes, subject: str = "") -> APIResponse:
        try:
            cmd = decode_command(data)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            log.warning("undecodable API request: %s", exc)
            return fail(ERR_INTERNAL, str(exc))
        handler = self._handlers.get(cmd.kind)
        if not cmd.id or handler is None:
            return UNKNOWN
        try:
            refused = await api_scope.check(self._nc, subject, cmd)
            return fail(*refused) if refused else await handler(cmd)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("API %s: a stored record cannot be read: %s", cmd.kind, exc)
            return fail(ERR_INTERNAL, str(exc))
        except Exception as exc:
            if storage_full(exc):  # an answer, not a passing trouble: retrying now would only wait
                return fail(ERR_STORAGE_FULL, "Storage full", f"the engine's stream has no room for this "
                            f"{cmd.kind}; nothing was stored ({exc})")
            if not is_transient(exc):
                raise
            # The stream cannot be reached right now (a leader election, a reconnection). Every command
            # is safe to send again (starts carry their run id, the others a directive id made from
            # the command id), which is what "busy" asks the client to do.
            log.info("API %s: the stream is not answering now (%s); answered busy", cmd.kind, exc)
            return BUSY

    # --- lookups by workflow id ------------------------------------------------------------------

    async def _pointer(self, wf_id: str) -> tuple[LatestRun, StoredMsg] | None:
        stored = await get_last(self._nc, subjects.latest(wf_id))
        if stored is None:
            return None
        return _latest_decoder.decode(stored.data), stored

    async def _run_info(self, wf_type: str, wf_id: str, run_id: str) -> tuple[RunInfo, bytes] | None:
        stored = await get_last(self._nc, subjects.run_info(wf_type, wf_id, run_id))
        if stored is None:
            return None
        return _info_decoder.decode(stored.data), stored.data

    async def latest_run(self, wf_id: str) -> RunInfo | None:
        """The latest run of ``wf_id``, or None."""
        found = await self._latest(wf_id)
        return found[0] if found is not None else None

    async def _latest(self, wf_id: str) -> tuple[RunInfo, bytes] | None:
        found = await self._pointer(wf_id)
        if found is None:
            return None
        pointer = found[0]
        return await self._run_info(pointer.wf_type, wf_id, pointer.run_id)

    # --- run.start -----------------------------------------------------------------------------

    async def _start(self, cmd: Command) -> APIResponse:
        start: DelayedStartCmd = cmd.msg
        return await self.start_run(start.run_info, start.input, start.start_at)

    async def start_run(self, ri: RunInfo, input: Any, start_at: datetime | None = None) -> APIResponse:
        """Create the run ``ri`` (idempotent by run id), as ``run.start`` does.
        ``start_at`` (ours): the start directive is a message schedule due then."""
        return (await self.start_new_run(ri, input, start_at))[0]

    async def start_new_run(self, ri: RunInfo, input: Any,
                            start_at: datetime | None = None) -> tuple[APIResponse, bool]:
        """``start_run``, and whether this call created the run (False: it existed already, or the
        start was refused). Schedules use it to tell a new tick run from a repeated one."""
        bad = check_names(("workflow id", ri.wf_id), ("workflow type", ri.wf_type), ("run id", ri.id))
        if bad:
            return bad, False
        entry = await self._registry.get(ri.wf_type)
        if entry is None:
            return NOT_REGISTERED, False
        timeout_ms = entry.start_step_timeout_ms or self._start_step_timeout_ms
        if start_at is not None:
            ri.scheduled_at = start_at  # describe and list show when a delayed run starts
        d = Directive(id=f"start.{ri.id}", timestamp=utcnow(), kind=DirectiveKind.start, run_info=ri,
                      msg=Start(input=input, timeout_ms=timeout_ms))
        return await self._per_id.run(ri.wf_id, lambda: self._create_run(d, start_at))

    async def _create_run(self, d: Directive, start_at: datetime | None) -> tuple[APIResponse, bool]:
        ri = d.run_info
        for _ in range(settings.START_ATTEMPTS):
            found = await self._pointer(ri.wf_id)
            if found is not None:
                pointer = found[0]
                if pointer.run_id == ri.id:
                    return OK, False  # this very start was done before (a retry): the run exists
                latest = await self._run_info(pointer.wf_type, ri.wf_id, pointer.run_id)
                if latest is not None and not latest[0].is_terminal:
                    return fail(ERR_ALREADY_RUNNING, "Workflow already has an active run",
                                f"workflow already has an active run: {pointer.run_id}"), False
                if await self._run_info(ri.wf_type, ri.wf_id, ri.id) is not None:
                    return OK, False  # an older start of this run id, retried after newer runs of the id
            pointer_msg = OutMsg(subjects.latest(ri.wf_id),
                                 msgspec.msgpack.encode(LatestRun(run_id=ri.id, wf_type=ri.wf_type)),
                                 {H_EXPECTED_LAST_SUBJECT_SEQ: str(found[1].seq if found else 0)})
            msgs = [
                pointer_msg,
                OutMsg(subjects.run_info(ri.wf_type, ri.wf_id, ri.id), msgspec.msgpack.encode(ri)),
                delayed_start(d, start_at) if start_at else OutMsg(
                    subjects.directive(ri.wf_type, ri.wf_id, ri.id), encode_directive(d), {H_MSG_ID: d.id}),
            ]
            try:
                await self._committer.submit(msgs)
            except Exception as exc:
                outcome = classify(exc)
                if outcome is CommitVerdict.RESNAPSHOT:
                    continue  # another start wrote first: look again
                if outcome is CommitVerdict.DONE:
                    return OK, False  # the same start, committed by another engine or an earlier attempt
                raise
            return OK, True
        return fail(ERR_INTERNAL, f"workflow {ri.wf_id} kept changing; start not done"), False

    # --- describe, event, cancel, terminate -----------------------------------------------------

    async def _describe(self, cmd: Command) -> APIResponse:
        describe: DescribeCmd = cmd.msg
        bad = check_names(("workflow id", describe.wf_id))
        if bad:
            return bad
        found = await self._latest(describe.wf_id)
        if found is None:
            return not_found("failed to get run info: workflow run not found")
        return APIResponse(success=True, payload=msgspec.Raw(found[1]))

    async def _send(self, cmd: Command, wf_id: str, kind: DirectiveKind, msg: DirectiveMessage | None,
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
        return await self.send_directive(current, kind, msg, directive_id(kind, cmd))

    async def send_directive(self, current: RunInfo, kind: DirectiveKind, msg: DirectiveMessage,
                             d_id: str) -> APIResponse:
        """Send ``msg`` to the run ``current`` (stored once per ``d_id``)."""
        d = Directive(id=d_id, timestamp=utcnow(), kind=kind, run_info=current, msg=msg)
        await publish(self._nc, subjects.directive(current.wf_type, current.wf_id, current.id),
                      encode_directive(d), {H_MSG_ID: d.id})
        return OK

    async def _event(self, cmd: Command) -> APIResponse:
        event: EventCmd = cmd.msg
        bad = check_names(("event name", event.event_name))
        return bad or await self._send(cmd, event.wf_id, DirectiveKind.event, None, event.event_name,
                                       event.payload)

    async def _cancel(self, cmd: Command) -> APIResponse:
        cancel: CancelCmd = cmd.msg
        return await self._send(cmd, cancel.wf_id, DirectiveKind.cancel, Cancel(reason=cancel.reason or ""))

    async def _terminate(self, cmd: Command) -> APIResponse:
        terminate: TerminateCmd = cmd.msg
        return await self._send(cmd, terminate.wf_id, DirectiveKind.terminate,
                                Terminate(reason=terminate.reason or ""))

    async def _catalog(self, cmd: Command) -> APIResponse:
        runs = await self._index("catalog.check")
        if isinstance(runs, APIResponse):
            return runs
        needs = await CatalogCheck(self._nc, self._registry, runs).needs(cmd.msg)
        return APIResponse(success=True, payload=msgspec.Raw(msgspec.msgpack.encode(needs)))

    # --- run.list (ours) ------------------------------------------------------------------------

    async def _index(self, what: str) -> RunIndex | APIResponse:
        """The run index, caught up with what was stored since its last read, or why it cannot answer."""
        if self._runs is None:
            return UNKNOWN
        if not await self._runs.wait_loaded():
            return fail(ERR_INTERNAL, "Run index not loaded yet",
                        "the engine is still reading the stored runs")
        try:
            await self._runs.catch_up()
        except Exception as exc:  # answer from what the index holds: at most a second behind
            log.info("%s: reading the newest run infos failed (%s); answering from the index", what, exc)
        return self._runs

    async def _list(self, cmd: Command) -> APIResponse:
        query: ListCmd = cmd.msg
        runs = await self._index("run.list")
        if isinstance(runs, APIResponse):
            return runs
        raws = runs.query(utcnow(), set(query.statuses), query.wf_type, query.since, query.limit,
                                query.stuck)
        return APIResponse(success=True, payload=msgspec.Raw(msgspec.msgpack.encode(
            [msgspec.Raw(r) for r in raws])))

    # --- worker.register -------------------------------------------------------------------------

    async def _register(self, cmd: Command) -> APIResponse:
        register: RegisterCmd = cmd.msg
        reason = subjects.invalid_id_reason(register.worker_id)
        if reason:
            return fail(ERR_INVALID_NAME, "Invalid worker id",
                        f"worker id {register.worker_id[:64]!r} {reason}")
        for t in register.types:
            bad = check_names(("workflow type", t.type), *(("event name", e.name) for e in t.events))
            if bad:
                return bad
        await self._registry.register(register.worker_id, register.types)
        return OK
