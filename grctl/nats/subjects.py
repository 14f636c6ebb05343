"""Every stream, subject and consumer name of the protocol, in one place (docs/protocol.md#subjects)."""

from __future__ import annotations

import re

from grctl import settings

STREAM = "grctl_state"

STREAM_SUBJECTS = [
    "grctl_directive.>",
    "grctl_history.>",
    "grctl_timers.>",
    "grctl_timers_fired",
    "grctl_run.*.*.*.info",
    "grctl_run.*.*.input",
    "grctl_run.*.*.output",
    "grctl_run.*.*.error",
    "grctl_wf_kv.*.*.*",
    "grctl_events.>",
    "grctl_state.run_state.>",
    "grctl_worker_task.>",
    "grctl_bg_task",
    "grctl_registry.>",
    "grctl_latest.*",
    "grctl_meta.*",
    "grctl_sched.>",
    "grctl_sched_timer.*.*",
    "grctl_sched_fired",
]

DIRECTIVE_CONSUMER = "grctl_directive_cons"
TIMER_CONSUMER = "grctl_timer_fired_cons"
BG_TASK_CONSUMER = "grctl_bg_task_cons"
SCHEDULE_CONSUMER = "grctl_sched_fired_cons"  # ours

DIRECTIVES_ALL = "grctl_directive.>"
TIMERS_FIRED = "grctl_timers_fired"
BG_TASK = "grctl_bg_task"
API_ALL = "grctl_api.>"
API_WORKER = "grctl_api.worker"
API_SCHEDULES = "grctl_api.schedules"  # ours: every schedule command
API_QUEUE = "grctl_api"

# Core NATS subject (not stored) on which the engine announces that a run ended.
OUTCOME_PREFIX = "grctl_outcome"

# A token may not hold the subject separators or wildcards, nor white space.
_BAD_TOKEN = re.compile(r"[.*>\s]")

_BAD_ID = re.compile(r"[*>\s]")


def _invalid_reason(value: str, limit: int, bad: re.Pattern[str], forbidden: str) -> str | None:
    if not value:
        return "must not be empty"
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        return f"must be at most {limit} bytes long (it is {size})"
    if bad.search(value):
        return f"must not contain {forbidden} or white space"
    return None


def invalid_token_reason(value: str) -> str | None:
    """Why ``value`` cannot be a single subject token, or None when it can."""
    return _invalid_reason(value, settings.MAX_NAME_BYTES, _BAD_TOKEN, "'.', '*', '>'")


def invalid_id_reason(value: str) -> str | None:
    """Why ``value`` cannot be a dotted id inside a subject (worker ids, directive ids may hold dots),
    or None when it can."""
    return _invalid_reason(value, settings.MAX_ID_BYTES, _BAD_ID, "'*', '>'")


def check_token(what: str, value: str) -> None:
    """Raise ``ValueError`` naming ``what`` when ``value`` cannot be a subject token."""
    reason = invalid_token_reason(value)
    if reason:
        shown = value if len(value) <= 64 else f"{value[:61]}..."
        raise ValueError(f"{what} {shown!r} {reason}")


# Ours: listing runs concerns no single workflow id.
API_RUNS = "grctl_api.runs"


def api_workflow(wf_id: str) -> str:
    return f"grctl_api.workflow.{wf_id}"


def worker_cmd(worker_id: str) -> str:
    return f"grctl_worker_cmd.{worker_id}"


def directive(wf_type: str, wf_id: str, run_id: str) -> str:
    return f"grctl_directive.{wf_type}.{wf_id}.{run_id}"


def worker_task(wf_type: str, wf_id: str, run_id: str) -> str:
    return f"grctl_worker_task.{wf_type}.{wf_id}.{run_id}"


def worker_task_filter(wf_type: str) -> str:
    return f"grctl_worker_task.{wf_type}.>"


def worker_consumer(wf_type: str) -> str:
    return f"grctl_worker_{wf_type}"


def history(wf_id: str, run_id: str) -> str:
    return f"grctl_history.{wf_id}.{run_id}"


def kv(wf_id: str, run_id: str, key: str) -> str:
    return f"grctl_wf_kv.{wf_id}.{run_id}.{key}"


def run_info(wf_type: str, wf_id: str, run_id: str) -> str:
    return f"grctl_run.{wf_type}.{wf_id}.{run_id}.info"


def workflow_residue(wf_id: str) -> list[str]:
    """Filters of everything transient of a workflow id, whatever the run: directives, timers, inbox,
    worker tasks (what a residue purge written by the public server names)."""
    return [f"grctl_directive.*.{wf_id}.>", f"grctl_timers.{wf_id}.>", inbox(wf_id),
            f"grctl_worker_task.*.{wf_id}.>"]


def any_run_info(wf_id: str, run_id: str) -> str:
    """The run-info record of a run whose type is not known (a wildcard over types)."""
    return f"grctl_run.*.{wf_id}.{run_id}.info"


ALL_RUN_INFOS = "grctl_run.*.*.*.info"


def latest_run_info(wf_id: str) -> str:
    """Wildcard matching every run-info record of a workflow id; the last one is its current run."""
    return f"grctl_run.*.{wf_id}.*.info"


def run_input(wf_id: str, run_id: str) -> str:
    return f"grctl_run.{wf_id}.{run_id}.input"


def run_output(wf_id: str, run_id: str) -> str:
    return f"grctl_run.{wf_id}.{run_id}.output"


def run_error(wf_id: str, run_id: str) -> str:
    return f"grctl_run.{wf_id}.{run_id}.error"


def run_state(wf_id: str, run_id: str) -> str:
    return f"grctl_state.run_state.{wf_id}.{run_id}"


def step_claim(wf_id: str, run_id: str, dispatch_seq: int) -> str:
    """Ours: which execution of a dispatched step may write its history (the dispatch is named by its
    replay window, ``history_seq_id``); under the run state's subjects, so no stream change is needed."""
    return f"{run_state(wf_id, run_id)}.claim.{dispatch_seq}"


def inbox(wf_id: str) -> str:
    return f"grctl_events.{wf_id}"


def timer(wf_id: str, kind: str, timer_id: str) -> str:
    return f"grctl_timers.{wf_id}.{kind}.{timer_id}"


def registry(wf_type: str) -> str:
    return f"grctl_registry.{wf_type}"


def latest(wf_id: str) -> str:
    """Ours: the pointer to the latest run of a workflow id (its type and run id), so every lookup by
    workflow id reads one exact subject, whatever the number of runs stored."""
    return f"grctl_latest.{wf_id}"


def meta(name: str) -> str:
    """Ours: stream-wide facts the engine keeps about itself (e.g. which record layout is in use)."""
    return f"grctl_meta.{name}"


def outcome(wf_id: str, run_id: str) -> str:
    """Ours: core NATS subject announcing that a run ended (the payload is its terminal history event)."""
    return f"{OUTCOME_PREFIX}.{wf_id}.{run_id}"


def run_records(wf_type: str, wf_id: str, run_id: str) -> list[str]:
    """Subject filters that together hold every stored record of one run, once it has finished (run
    info, input/output/error, history, store, run state); the residue of directives, tasks and timers
    is swept separately."""
    state = run_state(wf_id, run_id)
    return [run_info(wf_type, wf_id, run_id), f"grctl_run.{wf_id}.{run_id}.*", history(wf_id, run_id),
            f"grctl_wf_kv.{wf_id}.{run_id}.*", state, f"{state}.claim.*"]


def retention_timer(wf_id: str, run_id: str) -> str:
    """Ours: the schedule subject of a finished run's removal."""
    return f"grctl_timers.{wf_id}.retention.{run_id}"


# Ours: schedules (docs/protocol.md#schedules). The pending tick messages have a prefix of their own, so
# the consumer of fired ticks never receives them.
SCHEDULE_FIRED = "grctl_sched_fired"
SCHEDULE_STATES = "grctl_sched.state.*"
SCHEDULE_HOSTS = "grctl_sched.host.*"


def schedule_state(schedule_id: str) -> str:
    return f"grctl_sched.state.{schedule_id}"


def schedule_host(declarer_key: str) -> str:
    return f"grctl_sched.host.{declarer_key}"


def schedule_timer(schedule_id: str, kind: str) -> str:
    """The subject of a schedule's one pending message of ``kind`` (tick or buffer)."""
    return f"grctl_sched_timer.{schedule_id}.{kind}"


# Ours: API subjects that name what their sender may ask, so that NATS permissions can tell a worker's
# or a reader's requests from an operator's (the engine accepts only the matching command kinds there;
# see grctl/engine/api_scope.py). Public SDK programs keep using ``api_workflow``.
API_CHILD_PREFIX = "grctl_api.child"
API_DESCRIBE_PREFIX = "grctl_api.describe"
API_TYPED_PREFIX = "grctl_api.typed"


def api_child(wf_type: str, wf_id: str, run_id: str) -> str:
    """A worker's request from inside the run ``run_id`` of ``wf_id`` (of ``wf_type``): a start of a child
    of that run, or an event to that run's parent. The type comes first, so that NATS permissions give a
    worker host the subjects of its own types only; the engine checks the run (``api_scope``)."""
    return f"{API_CHILD_PREFIX}.{wf_type}.{wf_id}.{run_id}"


def api_typed(wf_type: str, wf_id: str) -> str:
    """An application's start of a run of ``wf_type``, or an event to a workflow of that type."""
    return f"{API_TYPED_PREFIX}.{wf_type}.{wf_id}"


def api_describe(wf_id: str) -> str:
    """A read-only request: describe a workflow id's latest run."""
    return f"{API_DESCRIBE_PREFIX}.{wf_id}"
