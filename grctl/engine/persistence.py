"""Reading a run's snapshot from the stream and committing a transition's records.

Every read is by exact subject (its cost does not grow with the number of runs stored). The commit is
one atomic batch (shared with other runs by the group committer) whose run-state record carries the
compare-and-swap. ``classify`` maps a failed commit to what the caller should do.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

import msgspec
import nats.errors
from nats.aio.client import Client as NATSClient

from grctl import settings
from grctl.engine.committer import GroupCommitter
from grctl.engine.snapshot import Snapshot
from grctl.engine.writes import Record, to_msgs
from grctl.models.directive import (
    Directive,
    DirectiveKind,
    Event,
    StepResult,
    StepTimeoutFired,
    decode_directive,
)
from grctl.models.records import RunState, RunStateKind
from grctl.nats import subjects
from grctl.nats.direct import get_last, get_next, read_subject
from grctl.nats.jetstream import (
    ERR_DUPLICATE_IN_BATCH,
    ERR_TOO_MANY_INFLIGHT,
    ERR_WRONG_LAST_SEQUENCE,
    H_MSG_ID,
    JetStreamError,
)

log = logging.getLogger(__name__)

ERR_WRONG_LAST_SEQUENCE_IN_BATCH = 10164
ERR_BATCH_TOO_LARGE = 10199
ERR_MESSAGE_TOO_LARGE = 10054

# Directives whose plan may look at the inbox.
_NEEDS_INBOX = frozenset({DirectiveKind.event, DirectiveKind.wake_from_inbox, DirectiveKind.wait})


def _needs_inbox(d: Directive) -> bool:
    if d.kind == DirectiveKind.step_result:  # only a result that asks to wait looks at the inbox
        return isinstance(d.msg, StepResult) and d.msg.next_msg_kind == DirectiveKind.wait
    return d.kind in _NEEDS_INBOX

_state_decoder = msgspec.msgpack.Decoder(RunState)


class CommitVerdict(Enum):
    """What to do after a commit failed."""

    DONE = "done"  # already processed (duplicate message id): ack
    RESNAPSHOT = "resnapshot"  # someone else moved the run: plan again on a fresh snapshot
    BACKOFF = "backoff"  # retry after a short delay
    UNFIT = "unfit"  # these records can never be stored (too big): fail the run instead


def classify(exc: BaseException) -> CommitVerdict:
    if isinstance(exc, nats.errors.MaxPayloadError):
        return CommitVerdict.UNFIT
    if isinstance(exc, JetStreamError):
        if exc.err_code in (ERR_BATCH_TOO_LARGE, ERR_MESSAGE_TOO_LARGE):
            return CommitVerdict.UNFIT
        if exc.err_code == ERR_DUPLICATE_IN_BATCH or "duplicate" in exc.description.lower():
            return CommitVerdict.DONE
        if exc.err_code in (ERR_WRONG_LAST_SEQUENCE, ERR_WRONG_LAST_SEQUENCE_IN_BATCH):
            return CommitVerdict.RESNAPSHOT
        if exc.err_code == ERR_TOO_MANY_INFLIGHT:
            return CommitVerdict.BACKOFF
    return CommitVerdict.BACKOFF


class Persistence:
    def __init__(self, nc: NATSClient, committer: GroupCommitter) -> None:
        self._nc = nc
        self._committer = committer

    async def load(self, d: Directive) -> Snapshot:
        """The snapshot of the run ``d`` belongs to (by ``r.wf_id`` + ``r.id``)."""
        wf_id, run_id = d.run_info.wf_id, d.run_info.id
        state_msg, last_history = await asyncio.gather(
            get_last(self._nc, subjects.run_state(wf_id, run_id)),
            get_last(self._nc, subjects.history(wf_id, run_id)),
        )
        state = _state_decoder.decode(state_msg.data) if state_msg is not None else None
        state_seq = state_msg.seq if state_msg is not None else 0
        reported = None
        if state is not None and isinstance(d.msg, StepTimeoutFired):
            reported = await self.reported_result(d, state, state_seq)
        next_event = None
        inbox_last = 0
        if state is not None and (_needs_inbox(d) or (reported is not None and _needs_inbox(reported))):
            next_event = await self.next_inbox_event(wf_id, state.last_event_seq_id)
        if state is None and d.kind == DirectiveKind.start:
            last = await get_last(self._nc, subjects.inbox(wf_id))
            inbox_last = last.seq if last is not None else 0
        return Snapshot(wf_id=wf_id, run_id=run_id, state=state, state_seq=state_seq,
                        last_history_seq=last_history.seq if last_history is not None else 0,
                        next_event=next_event, inbox_last_seq=inbox_last, reported_result=reported)

    async def reported_result(self, d: Directive, state: RunState, state_seq: int) -> Directive | None:
        """For a step timeout: a result of the active step that its worker reported before the deadline
        and that waits, unapplied, among the run's directives written after the current run state."""
        msg = d.msg
        assert isinstance(msg, StepTimeoutFired)
        if state.kind != RunStateKind.step or state.active_directive_id != msg.original_directive_id:
            return None
        r = d.run_info
        pending = await read_subject(self._nc, subjects.directive(r.wf_type, r.wf_id, r.id), state_seq + 1)
        for stored in pending:
            try:
                candidate = decode_directive(stored.data)
            except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
                continue
            if candidate.kind != DirectiveKind.step_result or not isinstance(candidate.msg, StepResult):
                continue
            if state.active_history_seq_id and \
                    candidate.run_info.history_seq_id != state.active_history_seq_id:
                continue
            try:
                name = candidate.msg.processed_step_name
            except (ValueError, msgspec.ValidationError):
                continue
            if state.active_step_name and name != state.active_step_name:
                continue
            if msg.deadline is None or candidate.timestamp <= msg.deadline:
                return candidate
        return None

    async def next_inbox_event(self, wf_id: str, after_seq: int) -> Directive | None:
        """The first decodable event in the workflow id's inbox after ``after_seq``, with its
        ``event_seq_id`` set to its stream sequence."""
        seq = after_seq + 1
        for _ in range(settings.MAX_BAD_INBOX_SKIPS):
            stored = await get_next(self._nc, subjects.inbox(wf_id), seq)
            if stored is None:
                return None
            try:
                event = decode_directive(stored.data)
                if not isinstance(event.msg, Event):
                    raise ValueError(f"inbox message of kind {event.kind}")
            except (ValueError, msgspec.DecodeError) as exc:
                log.warning("skipping undecodable inbox message %d of %s: %s", stored.seq, wf_id, exc)
                seq = stored.seq + 1
                continue
            event.msg.event_seq_id = stored.seq
            return event
        return None

    async def commit(self, records: list[Record], commit_id: str = "") -> dict:
        """Commit ``records`` atomically. ``commit_id`` (the directive's id) becomes the first message's
        ``Nats-Msg-Id``, so a directive redelivered after its commit (an engine that died before the ack)
        is refused as a duplicate (10201) within the stream's duplicate window instead of applied twice."""
        msgs = to_msgs(records)
        if commit_id and H_MSG_ID not in msgs[0].headers:
            msgs[0].headers[H_MSG_ID] = f"commit.{commit_id}"
        return await self._committer.submit(msgs)
