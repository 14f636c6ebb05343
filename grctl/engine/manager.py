"""The directive consumer: decode, then per run and in stream order load → plan → commit → ack.

Different runs proceed concurrently (so their commits can share a batch); one run's directives are
applied one at a time. Retries happen in place (keeping the run's order) and only after many failed
attempts is the message NAKed. Undecodable messages are logged and acked; a directive that cannot be
planned fails its run with ``UnexpectedFailure`` (PROTOCOL.md §5.3.3).
"""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from grctl.engine.keyed import KeyedSerializer
from grctl.engine.plan import PlanConfig, PlanError, plan, plan_failure
from grctl.engine.records import Record
from grctl.engine.snapshot import Snapshot
from grctl.engine.store import Outcome, Store, classify
from grctl.models.common import utcnow
from grctl.models.directive import Directive, decode_directive
from grctl.nats import subjects
from grctl.nats.pull import PullConsumer

log = logging.getLogger(__name__)

RETRY_DELAY = 0.1
MAX_ATTEMPTS = 50  # in place; then NAK and let JetStream redeliver
ACK_WAIT = 30.0
MAX_RECORDS = 999  # a server batch holds at most 1000 messages (one is kept spare)
FETCH_TIMEOUT = 0.25  # idle polling period; also how long stop() waits for a fetch in progress


def consumer_config(filter_subject: str, ack_wait: float = ACK_WAIT) -> ConsumerConfig:
    return ConsumerConfig(filter_subject=filter_subject, deliver_policy=DeliverPolicy.ALL,
                          ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait, max_ack_pending=10000)


class DirectiveManager:
    def __init__(self, js: JetStreamContext, store: Store, config: PlanConfig, *, slots: int = 1024) -> None:
        self._store = store
        self._config = config
        self._serial = KeyedSerializer()
        self.consumer = PullConsumer(js, subjects.DIRECTIVE_CONSUMER, self._handle,
                                     config=consumer_config(subjects.DIRECTIVES_ALL), slots=slots, batch=256,
                                     fetch_timeout=FETCH_TIMEOUT)
        self.applied = 0  # directives that produced a commit
        self.no_ops = 0

    async def _handle(self, msg: Msg) -> None:
        try:
            d = decode_directive(msg.data)
        except Exception as exc:
            log.warning("dropping undecodable directive on %s: %s", msg.subject, exc)
            await msg.ack()
            return
        r = d.run_info
        bad = next((f"{what} {value!r} {reason}" for what, value in
                    (("workflow id", r.wf_id), ("workflow type", r.wf_type), ("run id", r.id))
                    if (reason := subjects.invalid_token_reason(value))), None)
        if bad:  # its records could not be written to any subject: nothing to do but drop it
            log.warning("dropping directive %s on %s: %s", d.id, msg.subject, bad)
            await msg.ack()
            return
        key = (r.wf_id, r.id)
        await self._serial.run(key, lambda: self._process(msg, d))

    async def _process(self, msg: Msg, d: Directive) -> None:
        if await self.apply(d, msg):
            await msg.ack()
        else:
            await msg.nak(delay=RETRY_DELAY)

    async def apply(self, d: Directive, msg: Msg | None = None) -> bool:
        """Apply ``d`` to its run; True when done (committed, nothing to do, or already processed)."""
        last_progress = time.monotonic()
        unfit = ""  # why the planned records cannot be stored; then the run is failed instead
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if msg is not None and time.monotonic() - last_progress > ACK_WAIT / 3:
                await msg.in_progress()
                last_progress = time.monotonic()
            try:
                snap = await self._store.load(d)
            except Exception as exc:
                log.warning("snapshot of %s/%s failed (attempt %d): %s", d.run_info.wf_id, d.run_info.id,
                            attempt, exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            records = self._plan(snap, d, unfit)
            if records is None:
                return True
            if not records:
                self.no_ops += 1
                log.debug("directive %s (%s) is a no-op for %s/%s", d.id, d.kind, snap.wf_id, snap.run_id)
                return True
            try:
                await self._store.commit(records, d.id)
            except Exception as exc:
                outcome = classify(exc)
                if outcome is Outcome.DONE:
                    log.debug("directive %s was already processed", d.id)
                    return True
                if outcome is Outcome.UNFIT and not unfit:
                    unfit = f"its records cannot be stored: {exc}"
                    continue
                if outcome is Outcome.RESNAPSHOT:
                    log.debug("run %s/%s moved under directive %s; planning again", snap.wf_id, snap.run_id,
                              d.id)
                    if attempt > 3:
                        await asyncio.sleep(RETRY_DELAY * min(attempt, 10) / 10)
                    continue
                log.warning("commit of directive %s (%s) failed (attempt %d): %s", d.id, d.kind, attempt, exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            self.applied += 1
            return True
        log.error("giving up on directive %s (%s) for now after %d attempts", d.id, d.kind, MAX_ATTEMPTS)
        return False

    def _plan(self, snap: Snapshot, d: Directive, unfit: str) -> list[Record] | None:
        """The records for ``d``, or those failing the run when ``d`` cannot be applied (or its records
        cannot be stored: ``unfit``); None when not even that is possible (the directive is dropped)."""
        now = utcnow()
        try:
            if unfit:
                raise PlanError(unfit)
            records = plan(snap, d, now, self._config)
            if len(records) > MAX_RECORDS:
                raise PlanError(f"the transition needs {len(records)} messages, more than an atomic "
                                f"batch may hold ({MAX_RECORDS})")
            return records
        except Exception as exc:
            log.warning("directive %s (%s) of run %s/%s cannot be applied: %s; failing the run", d.id,
                        d.kind, snap.wf_id, snap.run_id, exc)
            try:
                return plan_failure(snap, d, str(exc), now, self._config)
            except Exception:
                log.exception("cannot fail run %s/%s either; dropping directive %s", snap.wf_id,
                              snap.run_id, d.id)
                return None
