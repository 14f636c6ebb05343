"""Every stream, subject and consumer name of the protocol, in one place (PROTOCOL.md §3.2–3.4)."""

from __future__ import annotations

import re

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
]

DIRECTIVE_CONSUMER = "grctl_directive_cons"
TIMER_CONSUMER = "grctl_timer_fired_cons"
BG_TASK_CONSUMER = "grctl_bg_task_cons"

DIRECTIVES_ALL = "grctl_directive.>"
TIMERS_FIRED = "grctl_timers_fired"
BG_TASK = "grctl_bg_task"
API_ALL = "grctl_api.>"
API_WORKER = "grctl_api.worker"
API_QUEUE = "grctl_api"

# A token may not hold the subject separators or wildcards, nor white space.
_BAD_TOKEN = re.compile(r"[.*>\s]")


def invalid_token_reason(value: str) -> str | None:
    """Why ``value`` cannot be a single subject token, or None when it can."""
    if not value:
        return "must not be empty"
    if _BAD_TOKEN.search(value):
        return "must not contain '.', '*', '>' or white space"
    return None


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


def inbox(wf_id: str) -> str:
    return f"grctl_events.{wf_id}"


def timer(wf_id: str, kind: str, timer_id: str) -> str:
    return f"grctl_timers.{wf_id}.{kind}.{timer_id}"


def registry(wf_type: str) -> str:
    return f"grctl_registry.{wf_type}"
