"""A load of ``Triple`` runs (support.wf_cluster) for the cluster tests and benchmarks, and the checks
that nothing was lost or done twice.

Each run is started with its own workflow id. A start whose reply is lost (the NATS node answering it
died) is retried the way an application should: look the id up first, attach to the run when it
exists, start it otherwise. Ids make starts idempotent, so a retry never creates a second run.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import nats.errors
from nats.aio.client import Client as NATSClient

from grctl.client.client import Client
from grctl.models.errors import WorkflowAlreadyRunningError, WorkflowNotFoundError
from grctl.models.history import HistoryEvent, HistoryKind, decode_history
from grctl.nats import subjects
from grctl.nats.direct import get_next
from grctl.workflow.handle import WorkflowHandle

WORKFLOW = "Triple"


def expected(n: int) -> int:
    return n + 111


@dataclass
class Outcome:
    wf_id: str
    n: int
    started: float = 0.0  # time.monotonic() of the first start attempt
    ended: float = 0.0  # when the result (or the final error) arrived
    result: object = None
    error: str | None = None
    start_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.result == expected(self.n)

    @property
    def latency(self) -> float:
        return self.ended - self.started

    @property
    def not_started(self) -> bool:
        return (self.error or "").startswith("not started")

    @property
    def lost(self) -> bool:
        """No outcome within the result timeout (as opposed to a run that ended badly)."""
        error = self.error or ""
        return error.startswith("TimeoutError") and "timed out after" not in error  # not a run timeout


@dataclass
class Load:
    """``count`` runs, ``concurrency`` in flight; ``on_progress(done)`` after each completion."""

    client: Client
    count: int
    concurrency: int = 50
    prefix: str = "load"
    result_timeout: float = 90.0
    start_deadline: float = 60.0
    on_progress: Callable[[int], None] | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    done: int = 0

    async def run(self) -> list[Outcome]:
        gate = asyncio.Semaphore(self.concurrency)
        self.outcomes = [Outcome(f"{self.prefix}-{i}", i) for i in range(self.count)]

        async def one(outcome: Outcome) -> None:
            async with gate:
                await self._one(outcome)
                self.done += 1
                if self.on_progress is not None:
                    self.on_progress(self.done)

        await asyncio.gather(*(one(o) for o in self.outcomes))
        return self.outcomes

    async def _start(self, outcome: Outcome) -> WorkflowHandle:
        deadline = time.monotonic() + self.start_deadline
        while True:
            try:
                if outcome.start_errors:  # an earlier attempt may have started it
                    try:
                        return await self.client.get_workflow_handle(outcome.wf_id)
                    except WorkflowNotFoundError:
                        pass
                return await self.client.start_workflow(WORKFLOW, outcome.wf_id, {"n": outcome.n})
            except WorkflowAlreadyRunningError:
                continue  # started by the attempt whose reply was lost: attach on the next turn
            except (TimeoutError, OSError, nats.errors.Error) as exc:  # the transport, not the request
                outcome.start_errors.append(f"{type(exc).__name__}: {exc}")
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _one(self, outcome: Outcome) -> None:
        outcome.started = time.monotonic()
        try:
            handle = await self._start(outcome)
        except Exception as exc:
            outcome.error = f"not started: {type(exc).__name__}: {exc}"
            outcome.ended = time.monotonic()
            return
        try:
            outcome.result = await handle.result(timeout=self.result_timeout)
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        finally:
            outcome.ended = time.monotonic()
            await handle.close()


def summary(outcomes: list[Outcome]) -> str:
    """One line: how many completed right, and the kinds of errors of the others."""
    good = sum(o.ok for o in outcomes)
    errors = Counter((o.error or f"wrong result {o.result!r}").split(":")[0] for o in outcomes if not o.ok)
    retried = sum(bool(o.start_errors) for o in outcomes)
    kinds = Counter(e.split(":")[0] for o in outcomes for e in o.start_errors)
    return (f"{good}/{len(outcomes)} completed with the right result; failures {dict(errors)}; "
            f"{retried} starts retried ({dict(kinds)})")


def longest_gap(outcomes: list[Outcome], after: float) -> float:
    """The longest time after ``after`` during which no run completed (the stall of a failure)."""
    ends = sorted(o.ended for o in outcomes if o.ok and o.ended >= after)
    if not ends:
        return float("inf")
    points = [after, *ends]
    return max(b - a for a, b in pairwise(points))


def widest_gap(outcomes: list[Outcome], after: float) -> tuple[float, float]:
    """The (start, end) in ``time.monotonic()`` of the longest stretch after ``after`` without a
    completed run."""
    ends = sorted(o.ended for o in outcomes if o.ok and o.ended >= after)
    points = [after, *ends]
    return max(pairwise(points), key=lambda ab: ab[1] - ab[0], default=(after, after))


async def hops_across(nc: NATSClient, outcomes: list[Outcome], start: float, end: float) -> Counter[str]:
    """Which step of a run's life (one history event to the next) held the runs in flight in the middle
    of the stretch between the monotonic times ``start`` and ``end``: where a stall held them."""
    wall = time.time() - time.monotonic()  # monotonic → wall clock, as the stream's time stamps are
    middle = wall + (start + end) / 2
    hops: Counter[str] = Counter()
    for outcome in outcomes:
        if not (outcome.started <= end and outcome.ended >= start):
            continue
        events: list[tuple[float, str]] = []
        msg = await get_next(nc, subjects.history(outcome.wf_id, "*"), 1)  # the run's first event
        while msg is not None:
            kind = str(decode_history(msg.data, seq=msg.seq).kind)
            events.append((stored_time(msg.headers["Nats-Time-Stamp"]), kind))
            msg = await get_next(nc, msg.subject, msg.seq + 1)
        events.append((float("inf"), "(not yet)"))
        for (t0, k0), (t1, k1) in pairwise(events):
            if t0 <= middle < t1:
                hops[f"{k0} -> {k1}"] += 1
    return hops


def stored_time(stamp: str) -> float:
    """A ``Nats-Time-Stamp`` (RFC 3339, nanoseconds) as a Unix time."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp() + float(f"0.{frac or 0}")


async def task_completions(nc: NATSClient, wf_id: str, run_id: str) -> dict[tuple[str, str], float]:
    """(wf_id, task name) → when the stream stored that task's ``task.completed`` event."""
    found: dict[tuple[str, str], float] = {}
    seq = 1
    subject = subjects.history(wf_id, run_id)
    while (msg := await get_next(nc, subject, seq)) is not None:
        event = decode_history(msg.data, seq=msg.seq)
        if str(event.kind) == "task.completed":
            found.setdefault((wf_id, event.msg.task_name), stored_time(msg.headers["Nats-Time-Stamp"]))
        seq = msg.seq + 1
    return found


def step_start_gaps(events: Iterable[HistoryEvent]) -> tuple[list[str], int]:
    """The steps of a run's history that completed without a ``step.started`` before, and how many
    steps were started more than once (taken up again after a worker or an engine lost them)."""
    started: Counter[str] = Counter()
    missing: list[str] = []
    for event in events:
        if event.kind == HistoryKind.step_started:
            started[event.msg.step_name] += 1
        elif event.kind == HistoryKind.step_completed and not started[event.msg.step_name]:
            missing.append(event.msg.step_name)
    return missing, sum(n - 1 for n in started.values() if n > 1)


def task_reruns(trace_dir: Path, completed_at: dict[tuple[str, str], float]) -> list[str]:
    """Task bodies (traced by support.wf_cluster) that ran again after their completion was recorded.

    ``completed_at`` maps (wf_id, task name) to the time the task's completion was stored."""
    found = []
    for path in trace_dir.glob("tasks.*"):
        for line in path.read_text().splitlines():
            wf_id, name, at = line.split()
            recorded = completed_at.get((wf_id, name))
            if recorded is not None and float(at) > recorded:
                found.append(f"{name} of {wf_id} ran at {float(at):.3f}, after its completion was "
                             f"recorded at {recorded:.3f}")
    return found


def task_runs(trace_dir: Path) -> Counter[tuple[str, str]]:
    runs: Counter[tuple[str, str]] = Counter()
    for path in trace_dir.glob("tasks.*"):
        for line in path.read_text().splitlines():
            wf_id, name, _ = line.split()
            runs[(wf_id, name)] += 1
    return runs
