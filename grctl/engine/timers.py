"""The timer consumer: a fired timer becomes a ``step_timeout``, ``wait_timeout`` or (ours) ``run_timeout``
directive for the run; a timer that keeps failing fails the run with ``TimerExhausted``. Whether the
timer is stale is decided by the planner, never here. Publishing is retried with growing pauses, so a
NATS outage delays a timer but does not exhaust it."""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from ulid import ULID

from grctl import settings
from grctl.engine.manager import engine_consumer
from grctl.engine.transitions import PlanError, step_name_of
from grctl.models.common import ErrorDetails, utcnow
from grctl.models.directive import (
    Directive,
    DirectiveKind,
    DirectiveMessage,
    Fail,
    RunTimedOut,
    StepTimeoutFired,
    Wait,
    WaitTimeout,
    encode_directive,
)
from grctl.models.records import Timer, TimerKind
from grctl.nats import subjects
from grctl.nats.jetstream import H_MSG_ID, publish
from grctl.nats.pull import ACK, Decision, nak
from grctl.ops import metrics

log = logging.getLogger(__name__)


_timer_decoder = msgspec.msgpack.Decoder(Timer)


def directive_for(timer: Timer, armed_by: Directive, delivered: int, fired_seq: int = 0) -> Directive | None:
    """The directive a fired timer turns into, or None for an unknown timer kind.

    ``fired_seq`` (the fired message's stream sequence) names the directive, so a fired timer delivered
    twice publishes the same directive twice, which the stream's deduplication stores once."""
    directive_id = f"timer.{fired_seq}" if fired_seq else str(ULID())
    if delivered > settings.TIMER_DELIVERIES:
        return _fail(armed_by, directive_id,
                     f"timer {timer.id} exceeded max delivery count {settings.TIMER_DELIVERIES}")
    msg: DirectiveMessage
    if timer.k == TimerKind.step_timeout:
        try:
            msg = StepTimeoutFired(step_name=step_name_of(armed_by), original_directive_id=armed_by.id,
                              armed_at=timer.created, deadline=timer.expires, armed_by=timer.d)
        except PlanError as exc:
            return _fail(armed_by, directive_id, f"failed to build step timeout directive: {exc}")
        kind = DirectiveKind.step_timeout
    elif timer.k == TimerKind.wait_timeout:
        if not isinstance(armed_by.msg, Wait):
            return _fail(armed_by, directive_id,
                         f"failed to build wait timeout directive: a {armed_by.kind} directive")
        msg = WaitTimeout(timeout_step_name=armed_by.msg.timeout_step_name or "",
                          original_directive_id=armed_by.id)
        kind = DirectiveKind.wait_timeout
    elif timer.k == TimerKind.run_timeout:
        msg = RunTimedOut(timer_id=timer.id)
        kind = DirectiveKind.run_timeout
    else:
        return None
    return Directive(id=directive_id, timestamp=utcnow(), kind=kind, run_info=armed_by.run_info, msg=msg)


def _fail(armed_by: Directive, directive_id: str, message: str) -> Directive:
    return Directive(id=directive_id, timestamp=utcnow(), kind=DirectiveKind.fail, run_info=armed_by.run_info,
                     msg=Fail(error=ErrorDetails(type="TimerExhausted", message=message)))


class TimerHandler:
    def __init__(self, nc: NATSClient, js: JetStreamContext) -> None:
        self._nc = nc
        self.consumer = engine_consumer(js, subjects.TIMER_CONSUMER, subjects.TIMERS_FIRED, self._handle,
                                        slots=256, batch=128)

    async def _handle(self, msg: Msg) -> Decision:
        try:
            timer = _timer_decoder.decode(msg.data)
            armed_by = Directive.from_wire(timer.d) if timer.d is not None and timer.d.id else None
        except Exception as exc:
            log.warning("dropping undecodable fired timer: %s", exc)
            return ACK
        if armed_by is None:
            return ACK  # command timers are not implemented; nothing to do
        delivered = msg.metadata.num_delivered or 1
        d = directive_for(timer, armed_by, delivered, msg.metadata.sequence.stream)
        if d is None:
            log.warning("dropping fired timer %s of unknown kind %r", timer.id, timer.k)
            return ACK
        r = d.run_info
        try:
            await publish(self._nc, subjects.directive(r.wf_type, r.wf_id, r.id), encode_directive(d),
                          {H_MSG_ID: d.id})
        except Exception as exc:
            log.warning("publishing the %s directive of timer %s failed: %s", d.kind, timer.id, exc)
            return nak(settings.TIMER_BACKOFF.delay(delivered))
        log.debug("timer %s fired: %s directive %s", timer.id, d.kind, d.id)
        metrics.timer_fired(timer.k)
        return ACK
