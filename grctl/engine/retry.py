"""``run.retry`` (ours): resume an ended run on the current code (docs/operations.md#retrying-ended-runs).

A retry is a **new run of the same workflow id**, never the old run reopened: the ended run keeps its
history and outcome untouched (clients that waited for it got that outcome), and the new run starts
at the task (or wait) the old one ended in — the step that failed, timed out or was terminated —
with the old run's input and a copy of its store. The store is as it was when that step started: a
failed step's writes are never applied, and a step that timed out or was terminated reported none.

One atomic batch moves the workflow id's latest-run pointer (compare-and-swap), links the two runs
(``retried_as`` on the old run's info, ``retry_of`` on the new one's, and in its ``run.started``),
copies the store and queues the ``resume`` directive. The new run's info is the batch's last run-info
record, so a public-SDK client, which takes the last run-info record of the id, finds the new run.
Two retries at once: the pointer's compare-and-swap lets one through; the other is told the run was
already retried.
"""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client as NATSClient
from ulid import ULID

from grctl import settings
from grctl.engine.committer import GroupCommitter
from grctl.engine.keyed import KeyedSerializer
from grctl.engine.persistence import CommitVerdict, classify
from grctl.engine.replies import check_names, fail, not_found
from grctl.models.command import (
    ERR_ALREADY_RUNNING,
    ERR_INTERNAL,
    ERR_NOT_RETRYABLE,
    APIResponse,
    Command,
    RetryCmd,
)
from grctl.models.common import RunInfo, RunStatus, utcnow
from grctl.models.directive import Directive, DirectiveKind, Resume, encode_directive
from grctl.models.records import LatestRun, RunState
from grctl.nats import subjects
from grctl.nats.direct import StoredMsg, get_last, read_subject
from grctl.nats.jetstream import H_EXPECTED_LAST_SUBJECT_SEQ, H_MSG_ID, OutMsg

log = logging.getLogger(__name__)

RETRYABLE = frozenset({RunStatus.failed, RunStatus.timed_out, RunStatus.terminated})

_latest_decoder = msgspec.msgpack.Decoder(LatestRun)
_info_decoder = msgspec.msgpack.Decoder(RunInfo)
_state_decoder = msgspec.msgpack.Decoder(RunState)


class Retrier:
    def __init__(self, nc: NATSClient, committer: GroupCommitter, per_id: KeyedSerializer) -> None:
        self._nc = nc
        self._committer = committer
        self._per_id = per_id  # the API's: starts and retries of one workflow id one at a time

    async def command(self, cmd: Command) -> APIResponse:
        retry: RetryCmd = cmd.msg
        bad = check_names(("workflow id", retry.wf_id), ("run id", retry.run_id or "latest"))
        if bad:
            return bad
        return await self._per_id.run(retry.wf_id, lambda: self.retry(retry))

    async def retry(self, cmd: RetryCmd) -> APIResponse:
        for _ in range(settings.RETRY_ATTEMPTS):
            answer = await self._attempt(cmd)
            if answer is not None:
                return answer
        return fail(ERR_INTERNAL, "Workflow kept changing", f"workflow {cmd.wf_id} kept changing; "
                      "retry not done")

    async def _attempt(self, cmd: RetryCmd) -> APIResponse | None:
        """The answer, or None when the pointer moved meanwhile (look again)."""
        pointer_msg = await get_last(self._nc, subjects.latest(cmd.wf_id))
        if pointer_msg is None:
            return not_found("no run of this workflow id is stored")
        pointer = _latest_decoder.decode(pointer_msg.data)
        run_id = cmd.run_id or pointer.run_id
        old = await self._info(pointer.wf_type, cmd.wf_id, run_id)
        if old is None:
            return not_found(f"run {run_id} of workflow {cmd.wf_id} not found")
        if old.retried_as:
            return fail(ERR_ALREADY_RUNNING, "Run already retried",
                          f"run {old.id} was retried as run {old.retried_as}")
        if old.id != pointer.run_id:
            return fail(ERR_NOT_RETRYABLE, "Run is not the latest of its workflow id",
                          f"run {old.id} is not the latest run of {cmd.wf_id} (that is {pointer.run_id}); "
                          "only the latest run can be retried")
        if old.retry_of and not old.is_terminal:  # e.g. the second of two concurrent retries
            return fail(ERR_ALREADY_RUNNING, "Run already retried",
                          f"run {old.retry_of} was retried as run {old.id}, which is {old.status}")
        if old.status not in RETRYABLE:
            which = f" (the retry of run {old.retry_of})" if old.retry_of else ""
            return fail(ERR_NOT_RETRYABLE, "Run cannot be retried",
                          f"run {old.id}{which} is {old.status}: only failed, timed-out and terminated runs "
                          "can be retried")
        state_msg = await get_last(self._nc, subjects.run_state(cmd.wf_id, old.id))
        state = _state_decoder.decode(state_msg.data) if state_msg is not None else None
        if state is None or state.active_task is None:
            return fail(ERR_NOT_RETRYABLE, "Run has no step to resume at",
                          f"run {old.id} kept no record of the step it ended in (it ended before this "
                          "engine version recorded one)")
        new = await self._commit(cmd, pointer_msg, old, state)
        if new is None:
            return None
        log.info("run %s/%s (%s) retried as run %s%s", old.wf_id, old.id, old.wf_type, new.id,
                 f" ({cmd.reason})" if cmd.reason else "")
        return APIResponse(success=True, payload=msgspec.Raw(msgspec.msgpack.encode(new)))

    async def _info(self, wf_type: str, wf_id: str, run_id: str) -> RunInfo | None:
        stored = await get_last(self._nc, subjects.run_info(wf_type, wf_id, run_id))
        return _info_decoder.decode(stored.data) if stored is not None else None

    async def _commit(self, cmd: RetryCmd, pointer_msg: StoredMsg, old: RunInfo,
                      state: RunState) -> RunInfo | None:
        assert state.active_task is not None  # checked by the caller
        new_id = str(ULID())
        now = utcnow()
        new = msgspec.structs.replace(old, id=new_id, status=RunStatus.pending, created_at=now,
                                      started_at=None, completed_at=None, stuck=None, retry_of=old.id,
                                      retried_as=None, history_seq_id=0)
        input_msg = await get_last(self._nc, subjects.run_input(old.wf_id, old.id))
        store = await read_subject(self._nc, subjects.kv(old.wf_id, old.id, "*"))
        resume = Directive(id=f"resume.{new_id}", timestamp=now, kind=DirectiveKind.resume, run_info=new,
                           msg=Resume(retry_of=old.id, task=state.active_task,
                                      input=msgspec.msgpack.decode(input_msg.data) if input_msg else None,
                                      last_event_seq_id=state.last_event_seq_id))
        msgs = [
            OutMsg(subjects.latest(old.wf_id),
                   msgspec.msgpack.encode(LatestRun(run_id=new_id, wf_type=old.wf_type)),
                   {H_EXPECTED_LAST_SUBJECT_SEQ: str(pointer_msg.seq)}),
            OutMsg(subjects.run_info(old.wf_type, old.wf_id, old.id),
                   msgspec.msgpack.encode(msgspec.structs.replace(old, retried_as=new_id))),
            *_latest_values(store, old, new_id),
            OutMsg(subjects.run_info(new.wf_type, new.wf_id, new_id), msgspec.msgpack.encode(new)),
            OutMsg(subjects.directive(new.wf_type, new.wf_id, new_id), encode_directive(resume),
                   {H_MSG_ID: resume.id}),
        ]
        try:
            await self._committer.submit(msgs)
        except Exception as exc:
            if classify(exc) is CommitVerdict.RESNAPSHOT:
                return None  # another retry (or start) moved the pointer first
            raise
        return new


def _latest_values(store: list[StoredMsg], old: RunInfo, new_id: str) -> list[OutMsg]:
    """The old run's store as the new run's: the last value of each key, as stored."""
    last: dict[str, bytes] = {}
    prefix = subjects.kv(old.wf_id, old.id, "")
    for stored in store:
        last[stored.subject.removeprefix(prefix)] = stored.data
    return [OutMsg(subjects.kv(old.wf_id, new_id, key), data) for key, data in last.items()]
