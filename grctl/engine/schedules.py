"""Firing schedules: the consumer of fired ticks, the overlap policies and the catch-up.

Each active schedule has one pending tick message in the stream (a nats-server message schedule on
``grctl_sched_timer.{id}.tick``); when it falls due the server stores it on ``grctl_sched_fired``, and
one engine's pull consumer takes it. Handling a tick starts the run of every tick from the fired one up
to now (those older than the catch-up window are counted missed), records the last tick handled in the
schedule's state (compare-and-swap), then arms the next tick. A tick's run has a workflow id and a run
id derived from the schedule id and the tick time, so a tick handled twice (two engines, a redelivery,
a restart between the start and the acknowledgement) starts one run. Ticks that fell due while no
engine ran wait in the stream, so a restart or a failover loses none inside the catch-up window.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import msgspec
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from grctl import settings
from grctl.engine import schedule_store as store
from grctl.engine.api_server import ApiServer
from grctl.engine.keyed import KeyedSerializer
from grctl.engine.manager import engine_consumer
from grctl.models.command import ERR_ALREADY_RUNNING
from grctl.models.common import RunInfo, utcnow
from grctl.models.directive import Cancel, DirectiveKind, DirectiveMessage, Terminate
from grctl.models.schedule import Overlap, RunOutcome, ScheduleState, Tick, TickKind
from grctl.models.schedule_clock import (
    fire_time,
    next_tick,
    tick_name,
    tick_run_id,
    tick_wf_id,
    ticks_between,
)
from grctl.nats import subjects
from grctl.nats.pull import ACK, Decision, nak
from grctl.nats.retry import log_failure
from grctl.ops import metrics

log = logging.getLogger(__name__)


_tick_decoder = msgspec.msgpack.Decoder(Tick)


class ScheduleFireError(Exception):
    """The engine refused a tick's run (e.g. the workflow type has no worker yet): tried again."""


class Scheduler:
    def __init__(self, nc: NATSClient, js: JetStreamContext, api: ApiServer) -> None:
        self.nc = nc
        self._api = api
        self.per_id = KeyedSerializer()  # one change of a schedule at a time in this engine
        self.consumer = engine_consumer(js, subjects.SCHEDULE_CONSUMER, subjects.SCHEDULE_FIRED,
                                        self._handle, slots=64, batch=32)

    async def _handle(self, msg: Msg) -> Decision:
        try:
            tick = _tick_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("dropping an undecodable schedule tick: %s", exc)
            return ACK
        what = f"schedule {tick.id}: tick {tick_name(tick.tick)}"
        try:
            await self.per_id.run(tick.id, lambda: self.on_tick(tick))
        except Exception as exc:
            if isinstance(exc, ScheduleFireError):  # tried again until the tick leaves its window
                log.warning("%s: %s; trying again", what, exc)
            else:
                log_failure(log, what, exc)
            return nak(settings.SCHEDULE_BACKOFF.delay(msg.metadata.num_delivered or 1))
        return ACK

    async def on_tick(self, tick: Tick) -> None:
        if tick.kind is TickKind.buffer:
            await store.update(self.nc, tick.id, lambda s: self._start_buffered(s, tick))
            return
        state = await store.update(self.nc, tick.id, lambda s: self._catch_up(s, tick))
        if state is not None and state.digest == tick.digest:
            await self.arm_next(state)  # also after a tick seen twice: the chain of ticks never breaks

    async def _catch_up(self, s: ScheduleState | None, tick: Tick) -> ScheduleState | None:
        if s is None or not s.active or s.paused or s.digest != tick.digest:
            return None  # removed, paused or redefined: nothing fires (a new definition armed its own)
        if s.last_tick is not None and tick.tick <= s.last_tick:
            return None  # handled already
        spec = s.spec
        assert spec is not None
        now = utcnow()
        due = ticks_between(spec, tick.tick, now, settings.SCHEDULE_MAX_CATCHUP_TICKS) or [tick.tick]
        for t in due:
            late = (now - fire_time(s.id, spec, t)).total_seconds()
            if late > spec.catchup_window:
                s.missed += 1
                metrics.schedule_tick(s.id, "missed")
                log.warning("schedule %s: tick %s missed (%.0fs late, catch-up window %gs)", s.id,
                            tick_name(t), late, spec.catchup_window)
            else:
                await self.fire(s, t)
            s.last_tick = t
        s.next_tick = next_tick(spec, max(now, due[-1]))
        return s

    async def fire(self, s: ScheduleState, t: datetime, policy: Overlap | None = None) -> RunOutcome:
        """Apply the overlap policy to tick ``t`` and start its run when the policy lets it; ``s`` is
        changed in place (the caller stores it)."""
        spec = s.spec
        assert spec is not None
        policy = policy or spec.overlap
        wf_id = tick_wf_id(s.id, t)
        looks = policy is not Overlap.allow_all and s.last_wf_id and s.last_wf_id != wf_id
        previous = await self._running(s.last_wf_id) if looks else None
        if previous is None and policy is Overlap.buffer_one and s.buffered is not None:
            # The previous run ended and a tick waits for it: that one starts first, this one waits now.
            waiting, s.buffered = s.buffered, None
            await self._start(s, waiting, tick_wf_id(s.id, waiting))
            return await self._buffer(s, t, wf_id, f"{s.last_wf_id} started before it")
        if previous is not None:
            busy = f"{previous.wf_id} is still running"
            if policy is Overlap.skip or (policy is Overlap.buffer_one and s.buffered is not None):
                s.skipped += 1
                metrics.schedule_tick(s.id, "skipped")
                log.info("schedule %s: tick %s skipped (%s)", s.id, tick_name(t), busy)
                return RunOutcome(tick=t, wf_id=wf_id, action="skipped", detail=busy)
            if policy is Overlap.buffer_one:
                return await self._buffer(s, t, wf_id, busy)
            await self._stop(previous, policy, f"schedule {s.id}: tick {tick_name(t)} ({policy})")
        created = await self._start(s, t, wf_id)
        return RunOutcome(tick=t, wf_id=wf_id, action="started" if created else "exists")

    async def _buffer(self, s: ScheduleState, t: datetime, wf_id: str, why: str) -> RunOutcome:
        s.buffered = t
        await self._arm_buffer(s)
        metrics.schedule_tick(s.id, "buffered")
        return RunOutcome(tick=t, wf_id=wf_id, action="buffered", detail=why)

    async def _start(self, s: ScheduleState, t: datetime, wf_id: str) -> bool:
        """Start tick ``t``'s run; False when it had one already (a trigger or backfill repeated, a
        tick handled twice), which is neither fired again nor counted."""
        spec = s.spec
        assert spec is not None
        ri = RunInfo(id=tick_run_id(s.id, t), wf_id=wf_id, wf_type=spec.workflow, created_at=utcnow())
        reply, created = await self._api.start_new_run(ri, spec.input)
        if not reply.success and not (reply.error and reply.error.code == ERR_ALREADY_RUNNING):
            err = reply.error
            raise ScheduleFireError(f"starting {wf_id} failed: {err.message if err else 'no reason'}"
                                    f"{f' ({err.detail})' if err and err.detail else ''}")
        s.last_wf_id = wf_id
        if not created:
            log.info("schedule %s: tick %s has its run %s already", s.id, tick_name(t), wf_id)
            return False
        s.fired += 1
        lateness = (utcnow() - fire_time(s.id, spec, t)).total_seconds()
        metrics.schedule_tick(s.id, "fired", lateness)
        log.info("schedule %s: tick %s started %s (%.3fs after its time)", s.id, tick_name(t), wf_id,
                 lateness)
        return True

    async def _stop(self, previous: RunInfo, policy: Overlap, reason: str) -> None:
        msg: DirectiveMessage
        if policy is Overlap.cancel_other:
            kind, msg = DirectiveKind.cancel, Cancel(reason=reason)
        else:
            kind, msg = DirectiveKind.terminate, Terminate(reason=reason)
        await self._api.send_directive(previous, kind, msg, f"{kind}.sched.{previous.id}")

    async def _running(self, wf_id: str) -> RunInfo | None:
        run = await self._api.latest_run(wf_id)
        return run if run is not None and not run.is_terminal else None

    async def _start_buffered(self, s: ScheduleState | None, tick: Tick) -> ScheduleState | None:
        if s is None or not s.active or s.buffered is None or s.digest != tick.digest:
            return None
        if s.last_wf_id and await self._running(s.last_wf_id):
            await self._arm_buffer(s)
            return None
        t, s.buffered = s.buffered, None
        await self.fire(s, t, Overlap.allow_all)
        return s

    async def _arm_buffer(self, s: ScheduleState) -> None:
        assert s.buffered is not None
        again = utcnow() + timedelta(seconds=settings.SCHEDULE_BUFFER_POLL)
        await store.arm(self.nc, s, TickKind.buffer, s.buffered, again)

    async def arm_next(self, s: ScheduleState) -> None:
        """Arm the state's next tick (nothing for a removed or paused schedule, or one past its end)."""
        if s.active and not s.paused and s.next_tick is not None:
            assert s.spec is not None
            await store.arm(self.nc, s, TickKind.tick, s.next_tick, fire_time(s.id, s.spec, s.next_tick))

    async def ensure_armed(self, s: ScheduleState) -> None:
        """At an engine's start: a schedule whose pending tick is missing gets it again (a tick that
        fired and waits in the stream may then come twice, which is harmless)."""
        if not s.active or s.paused:
            return
        if s.next_tick is not None and not await store.armed(self.nc, s.id, TickKind.tick):
            await self.arm_next(s)
        if s.buffered is not None and not await store.armed(self.nc, s.id, TickKind.buffer):
            await self._arm_buffer(s)
