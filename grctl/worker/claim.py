"""The claim of a step execution: no task body runs again once its completion is recorded, even when
two workers hold deliveries of the same task at once (a redelivery after a nats-server crash racing the
first delivery).

An execution writes nothing to the history before it holds the step's claim, the last message on
``subjects.step_claim`` of the dispatch. It takes the claim just before its first live operation (a
step that only replays, or records nothing, never claims), so the common path costs one write and no
read. Every history write then checks that the claim is still its own (a last-sequence check against
the claim subject): an execution whose claim was taken over is stopped at its next write
(``StepSuperseded``) and records no outcome.

- First claim: written only if the subject is empty. If another execution claimed first, this one
  reads the step's history (the other's outcomes become replays) and takes over.
- Take-over: written only if the history has not changed since this execution read it. So an outcome
  the other execution records is either in what this one read, and replayed, or it makes the take-over
  fail, and the history is read again. Two executions may still run one task body at the same time
  until one of them records its outcome; never after.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from grctl.models.common import RunInfo
from grctl.models.history import dispatch_ended
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.direct import get_last
from grctl.nats.history import read_history
from grctl.nats.jetstream import (
    ERR_WRONG_LAST_SEQUENCE,
    H_EXPECTED_LAST_SUBJECT_SEQ,
    H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT,
    JetStreamError,
)
from grctl.worker.errors import DispatchEnded
from grctl.worker.publisher import Publisher
from grctl.worker.replay import ReplayCursor


def lost_claim(exc: BaseException) -> bool:
    """True when a write was refused because the claim it checked is no longer the newest."""
    # 10164 is the same refusal when it comes from a write published as a batch.
    return isinstance(exc, JetStreamError) and exc.err_code in (ERR_WRONG_LAST_SEQUENCE, 10164)


class StepClaim:
    def __init__(self, connection: Connection, publisher: Publisher, run: RunInfo, task_seq: int = 0) -> None:
        self._connection = connection
        self._publisher = publisher
        self._run = run
        self._task_seq = task_seq  # the task message's stream sequence (0: unknown)
        self._execution = uuid.uuid4().hex
        # Without a replay window (a server that does not say) there is nothing to claim.
        self._subject = subjects.step_claim(run.wf_id, run.id, run.history_seq_id) \
            if run.history_seq_id > 0 else ""
        self._seq = 0  # the stream sequence of this execution's claim, once held
        self._taking_over = False  # another execution claimed first
        self._history_last = 0  # the history's last sequence when this execution last read it
        self._attempt = 0
        self._lock = asyncio.Lock()
        self.generation = 0  # how many times the history was read again (callers match anew)

    @property
    def held(self) -> bool:
        return self._seq > 0 or not self._subject

    def write_headers(self) -> dict[str, str]:
        """Headers that make a history write fail unless this execution still holds the claim."""
        if not self._subject:
            return {}
        return {H_EXPECTED_LAST_SUBJECT_SEQ: str(self._seq),
                H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT: self._subject}

    async def take(self, generation: int, cursor: ReplayCursor) -> bool:
        """Hold the claim, True; False when the caller must match its operation again first (the history
        was read again, now or since the caller's ``generation``). Transport errors are raised for the
        caller to retry."""
        async with self._lock:
            if self.generation != generation:
                return False
            if self.held:
                return True
            try:
                self._seq = await self._write()
            except JetStreamError as exc:
                if not lost_claim(exc):
                    raise
                await self._read_again(cursor)
                return False
            return True

    async def _write(self) -> int:
        if not self._taking_over:  # first claim: nobody claimed this dispatch before
            check = {H_EXPECTED_LAST_SUBJECT_SEQ: "0"}
        else:  # take-over: the history is as this execution last read it
            check = {H_EXPECTED_LAST_SUBJECT_SEQ: str(self._history_last),
                     H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT: subjects.history(self._run.wf_id, self._run.id)}
        body = json.dumps({"worker_id": self._publisher.worker_id, "execution": self._execution}).encode()
        # The id makes a write retried after a lost ack count once (its ack then gives the first seq).
        msg_id = f"c.{self._run.id}.{self._run.history_seq_id}.{self._execution}.{self._attempt}"
        return await self._publisher.claim(self._subject, body, msg_id, check)

    async def _read_again(self, cursor: ReplayCursor) -> None:
        """Another execution claimed the step: read its history (the last sequence first, so whatever
        is written after it makes the take-over fail) and prepare a take-over."""
        nc = self._connection.nc
        last = await get_last(nc, subjects.history(self._run.wf_id, self._run.id))
        events = await read_history(nc, self._run.wf_id, self._run.id, self._run.history_seq_id)
        if dispatch_ended(events, self._task_seq):
            raise DispatchEnded(f"the run moved past this dispatch of step {self._run.id}/"
                                f"{self._run.history_seq_id}")
        cursor.extend(events)
        self._history_last = last.seq if last is not None else 0
        self._taking_over = True
        self._attempt += 1
        self.generation += 1
