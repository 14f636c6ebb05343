"""The directive consumer: decode, then per run and in stream order load → plan → commit → ack.

Different runs proceed concurrently (so their commits can share a batch); one run's directives are
applied one at a time. Retries happen in place (keeping the run's order) and only after many failed
attempts is the message NAKed. Undecodable messages are logged and acked; a directive that cannot be
planned fails its run with ``UnexpectedFailure``.

The consumer's ack wait is short (``settings.ENGINE_ACK_WAIT``) and the pull loop sends in-progress acks
for work that takes longer, so a directive held by an engine that died is delivered again within
seconds. When a run ends, its outcome is announced on a core NATS subject for the clients waiting
for it; a directive that finds its run already ended announces it again (the engine may have died
between the commit and the announcement).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from grctl import settings
from grctl.engine.held import newly_stuck
from grctl.engine.keyed import KeyedSerializer
from grctl.engine.persistence import CommitVerdict, Persistence, classify
from grctl.engine.plan import PlanConfig, PlanError, plan, plan_failure
from grctl.engine.snapshot import Snapshot
from grctl.engine.writes import HistoryRec, Record
from grctl.models.common import utcnow
from grctl.models.directive import Directive, decode_directive
from grctl.models.history import STEP_END_KINDS, HistoryEvent, encode_history
from grctl.nats import subjects
from grctl.nats.history import last_event
from grctl.nats.pull import ACK, Decision, Handler, PullLoop, bind_durable, nak
from grctl.nats.retry import is_transient
from grctl.ops import metrics

log = logging.getLogger(__name__)


def consumer_config(filter_subject: str, ack_wait: float = settings.ENGINE_ACK_WAIT) -> ConsumerConfig:
    return ConsumerConfig(filter_subject=filter_subject, deliver_policy=DeliverPolicy.ALL,
                          ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait,
                          max_ack_pending=settings.ENGINE_MAX_ACK_PENDING)


def engine_consumer(js: JetStreamContext, durable: str, filter_subject: str, handler: Handler, *,
                    slots: int, batch: int) -> PullLoop:
    """A pull loop on one of the engine's durable consumers (short ack wait, heartbeats)."""
    return PullLoop(durable, bind_durable(js, durable, consumer_config(filter_subject)), handler, slots=slots,
                    batch=batch, fetch_timeout=settings.ENGINE_FETCH_TIMEOUT,
                    heartbeat=settings.heartbeat_for(settings.ENGINE_ACK_WAIT))


def unfit_names(d: Directive) -> str | None:
    """Why ``d`` cannot be applied because a name in it could not be part of a subject, or None."""
    r = d.run_info
    for what, value in (("workflow id", r.wf_id), ("workflow type", r.wf_type), ("run id", r.id)):
        reason = subjects.invalid_token_reason(value)
        if reason:
            return f"{what} {value[:64]!r} {reason}"
    reason = subjects.invalid_id_reason(d.id)
    if reason:
        return f"directive id {d.id[:64]!r} {reason}"
    return None


def terminal_event(records: list[Record]) -> HistoryEvent | None:
    for record in records:
        if isinstance(record, HistoryRec) and record.event.is_terminal:
            return record.event
    return None


def step_ends(records: Sequence[Record]) -> list[str]:
    """The kinds of the step ends (``step.completed``, ``step.failed``...) among ``records``."""
    return [str(r.event.kind) for r in records
            if isinstance(r, HistoryRec) and r.event.kind in STEP_END_KINDS]


class DirectiveManager:
    def __init__(self, nc: NATSClient, js: JetStreamContext, persistence: Persistence, config: PlanConfig, *,
                 watched_since: Callable[[], datetime] | None = None,
                 slots: int = settings.ENGINE_SLOTS) -> None:
        self._nc = nc
        self._persistence = persistence
        self._config = config
        self._watched_since = watched_since
        self._serial = KeyedSerializer()
        self.consumer = engine_consumer(js, subjects.DIRECTIVE_CONSUMER, subjects.DIRECTIVES_ALL,
                                        self._handle, slots=slots, batch=256)

    async def _handle(self, msg: Msg) -> Decision:
        try:
            d = decode_directive(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            log.warning("dropping undecodable directive on %s: %s", msg.subject, exc)
            return ACK
        bad = unfit_names(d)
        if bad:  # its records could not be written to any subject: nothing to do but drop it
            log.warning("dropping directive on %s: %s", msg.subject[:128], bad)
            return ACK
        r = d.run_info
        return await self._serial.run((r.wf_id, r.id), lambda: self._process(d, msg))

    async def _process(self, d: Directive, msg: Msg) -> Decision:
        if await self.apply(d, msg.metadata.num_delivered or 1):
            return ACK
        return nak(settings.DIRECTIVE_BACKOFF.delay(msg.metadata.num_delivered or 1))

    async def apply(self, d: Directive, delivered: int = 1) -> bool:
        """Apply ``d`` to its run; True when done (committed, nothing to do, or already processed)."""
        unfit = ""  # why the planned records cannot be stored; then the run is failed instead
        for attempt in range(1, settings.DIRECTIVE_ATTEMPTS + 1):
            try:
                snap = await self._persistence.load(d)
            except Exception as exc:
                log.warning("snapshot of %s/%s failed (attempt %d): %s", d.run_info.wf_id, d.run_info.id,
                            attempt, exc, exc_info=not is_transient(exc))
                await asyncio.sleep(settings.DIRECTIVE_BACKOFF.delay(attempt))
                continue
            if self._watched_since is not None:
                snap = dataclasses.replace(snap, watched_since=self._watched_since())
            records = self._plan(snap, d, unfit)
            if records is None:
                return True
            if not records:
                metrics.directive_applied(d.kind, d.run_info.wf_type, committed=False)
                log.debug("directive %s (%s) is a no-op for %s/%s", d.id, d.kind, snap.wf_id, snap.run_id)
                if snap.is_terminal:
                    await self._announce_stored(snap.wf_id, snap.run_id)
                return True
            try:
                await self._persistence.commit(records, d.id)
            except Exception as exc:
                outcome = classify(exc)
                if outcome is CommitVerdict.DONE:
                    log.debug("directive %s was already processed", d.id)
                    if terminal_event(records) is not None:
                        await self._announce_stored(snap.wf_id, snap.run_id)
                    return True
                if outcome is CommitVerdict.UNFIT and not unfit:
                    unfit = f"its records cannot be stored: {exc}"
                    continue
                if outcome is CommitVerdict.RESNAPSHOT:
                    log.debug("run %s/%s moved under directive %s; planning again", snap.wf_id, snap.run_id,
                              d.id)
                    if attempt > 3:
                        await asyncio.sleep(settings.DIRECTIVE_BACKOFF.delay(attempt - 3))
                    continue
                log.warning("commit of directive %s (%s) failed (attempt %d): %s", d.id, d.kind, attempt, exc)
                await asyncio.sleep(settings.DIRECTIVE_BACKOFF.delay(attempt))
                continue
            stuck = newly_stuck(records)
            if stuck is not None and stuck.stuck is not None:
                s = stuck.stuck
                log.warning("run %s/%s (%s) is stuck: %s %r (%s) reported by %s; it goes on when a worker "
                            "with that handler takes it", stuck.wf_id, stuck.id, stuck.wf_type, s.reason,
                            s.handler, s.detail, s.worker_id or "the engine")
                metrics.run_stuck(stuck.wf_type, s.reason)
            ended = terminal_event(records)
            metrics.directive_applied(d.kind, d.run_info.wf_type, True, ended.kind if ended else None)
            if metrics.enabled():
                metrics.steps_ended(d.run_info.wf_type, step_ends(records))
            if ended is not None:
                await self._announce(ended)
            return True
        log.error("giving up on directive %s (%s) for now after %d attempts", d.id, d.kind,
                  settings.DIRECTIVE_ATTEMPTS)
        return False

    def _plan(self, snap: Snapshot, d: Directive, unfit: str) -> list[Record] | None:
        """The records for ``d``, or those failing the run when ``d`` cannot be applied (or its records
        cannot be stored: ``unfit``); None when not even that is possible (the directive is dropped)."""
        now = utcnow()
        try:
            if unfit:
                raise PlanError(unfit)
            records = plan(snap, d, now, self._config)
            if len(records) > settings.MAX_RECORDS:
                raise PlanError(f"the transition needs {len(records)} messages, more than an atomic "
                                f"batch may hold ({settings.MAX_RECORDS})")
            return records
        except PlanError as exc:
            log.warning("directive %s (%s) of run %s/%s cannot be applied: %s; failing the run", d.id,
                        d.kind, snap.wf_id, snap.run_id, exc)
            cause = str(exc)
        except Exception as exc:  # a bug in the planner: say so loudly, and still end the run cleanly
            log.exception("planning directive %s (%s) of run %s/%s failed; failing the run", d.id, d.kind,
                          snap.wf_id, snap.run_id)
            cause = f"{type(exc).__name__}: {exc}"
        try:
            return plan_failure(snap, d, cause, now, self._config)
        except Exception:
            log.exception("cannot fail run %s/%s either; dropping directive %s", snap.wf_id, snap.run_id,
                          d.id)
            return None

    async def _announce(self, event: HistoryEvent) -> None:
        """Tell the clients waiting for this run that it ended (core NATS: nothing is stored)."""
        try:
            await self._nc.publish(subjects.outcome(event.wf_id, event.run_id), encode_history(event))
        except Exception as exc:  # the stored outcome is still there for a client that looks
            log.debug("announcing the end of run %s failed: %s", event.run_id, exc)

    async def _announce_stored(self, wf_id: str, run_id: str) -> None:
        try:
            event = await last_event(self._nc, wf_id, run_id)
        except Exception as exc:
            log.debug("reading the end of run %s failed: %s", run_id, exc, exc_info=not is_transient(exc))
            return
        if event is not None and event.is_terminal:
            await self._announce(event)

