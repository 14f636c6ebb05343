"""Fault injection with real processes: a file-backed nats-server, an engine process and worker
processes serving ``support.wf_chaos``; a load of ``Chaos`` runs from an in-process client; faults
(SIGKILL of the engine or a worker, a nats-server restart) while the load runs; and the verdict: runs
completed with the right result, failed, lost, and task bodies run again after their completion was
recorded. Used by tests/integration/test_chaos.py (small) and tests/bench/bench_chaos.py (large).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ulid import ULID

from grctl.client.client import Client
from grctl.models.errors import WorkflowError
from grctl.models.history import HistoryKind
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))

from support.processes import WorkerProcess  # noqa: E402
from support.wf_chaos import TASK_LOG, expected  # noqa: E402


@dataclass
class Verdict:
    """What happened to every run of a load."""

    ok: int = 0
    wrong: list[str] = field(default_factory=list)  # completed with a wrong result
    failed: list[str] = field(default_factory=list)  # the run ended failed/cancelled/timed out
    start_errors: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # no outcome within the deadline
    duplicates: list[str] = field(default_factory=list)  # a task body ran after its completion
    completions: list[float] = field(default_factory=list)  # monotonic times of outcomes
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.wrong or self.failed or self.start_errors or self.lost or self.duplicates)

    def summary(self) -> str:
        return (f"ok {self.ok}, wrong {len(self.wrong)}, failed {len(self.failed)}, start errors "
                f"{len(self.start_errors)}, lost {len(self.lost)}, duplicate task bodies "
                f"{len(self.duplicates)}")

    def details(self, limit: int = 5) -> str:
        parts = []
        for name in ("wrong", "failed", "start_errors", "lost", "duplicates"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}: {items[:limit]}")
        return "; ".join(parts)

    def recovery_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` (a monotonic time) to the first outcome after it."""
        later = [t for t in self.completions if t >= moment]
        return min(later) - moment if later else None


class System:
    """nats-server + engine process + worker processes in ``work``; every process ended by pid."""

    def __init__(self, work: Path, workers: int = 1, max_concurrent: int = 64,
                 worker_env: dict[str, str] | None = None, engine_args: list[str] | None = None) -> None:
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.nats = NatsServerProcess(store_dir=work / "nats", log_file=work / "nats.log")
        self.n_workers = workers
        self.max_concurrent = max_concurrent
        self.extra_worker_env = worker_env or {}
        self.engine_args = engine_args or []
        self.engine: subprocess.Popen[bytes] | None = None
        self.engine_starts = 0
        self.workers: list[WorkerProcess] = []
        self.worker_starts = 0

    @property
    def url(self) -> str:
        return self.nats.url

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(GRCTL_NATS_SERVERS=self.url, GRCTL_TEST_DIR=str(self.work), PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")]))
        env.update(self.extra_worker_env)
        return env

    async def start(self) -> None:
        self.nats.start()
        self.start_engine()
        await wait_engine(self.url)
        for _ in range(self.n_workers):
            await self.start_worker()

    def start_engine(self) -> None:
        self.engine_starts += 1
        with open(self.work / f"engine-{self.engine_starts}.log", "wb") as log:
            self.engine = subprocess.Popen(
                [sys.executable, "-m", "grctl", "engine", "-s", self.url, *self.engine_args],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)

    def kill_engine(self) -> None:
        if self.engine is not None and self.engine.poll() is None:
            self.engine.kill()
            self.engine.wait()

    async def start_worker(self) -> WorkerProcess:
        self.worker_starts += 1
        worker = WorkerProcess("support.wf_chaos", self.env(), "--max-concurrent", str(self.max_concurrent))
        worker.log_path = self.work / f"worker-{self.worker_starts}.log"
        worker.start()
        self.workers.append(worker)
        await worker.ready(60)
        return worker

    async def replace_worker(self, index: int = 0) -> None:
        """SIGKILL a worker and start another at once."""
        victim = self.workers.pop(index)
        victim.kill()
        await self.start_worker()

    async def restart_nats(self, downtime: float, sig: int = signal.SIGTERM) -> None:
        if sig == signal.SIGKILL:
            self.nats.kill()
        else:
            await asyncio.to_thread(self.nats.stop)
        await asyncio.sleep(downtime)
        await asyncio.to_thread(self.nats.start)

    async def stop(self) -> None:
        for worker in self.workers:
            await asyncio.to_thread(worker.stop)
        if self.engine is not None and self.engine.poll() is None:
            self.engine.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.engine.wait, 15)
            except subprocess.TimeoutExpired:
                self.kill_engine()
        self.nats.stop()


async def wait_engine(url: str, timeout: float = 30.0) -> None:
    """Until an engine answers on the API (a "not found" reply counts)."""
    conn = await Connection.connect([url], name="grctl-chaos-probe")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                await Client(conn).describe("engine-ready-probe")
            except WorkflowError:
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no engine answered on {url} within {timeout}s") from None
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def run_load(client: Client, n: int, concurrency: int, deadline: float,
                   progress: Callable[[int], Awaitable[None]] | None = None) -> Verdict:
    """Start ``n`` Chaos runs, at most ``concurrency`` at a time, and wait for each outcome (at most
    ``deadline`` seconds after the load began). ``progress(done)`` is awaited after each outcome."""
    verdict = Verdict(started_at=time.monotonic())
    gate = asyncio.Semaphore(concurrency)
    end = verdict.started_at + deadline
    done = 0
    prefix = f"chaos-{ULID()}".lower()

    async def one(i: int) -> None:
        nonlocal done
        wf_id = f"{prefix}-{i}"
        async with gate:
            try:
                handle = await client.start_workflow("Chaos", wf_id, {"n": i})
            except Exception as exc:
                verdict.start_errors.append(f"{wf_id}: {type(exc).__name__}: {exc}")
                return
            try:
                result = await handle.result(timeout=max(0.1, end - time.monotonic()))
            except TimeoutError as exc:
                if isinstance(exc, asyncio.TimeoutError) or "timed out after" not in str(exc):
                    verdict.lost.append(wf_id)
                else:
                    verdict.failed.append(f"{wf_id}: {exc}")
                return
            except (WorkflowError, asyncio.CancelledError) as exc:
                verdict.failed.append(f"{wf_id}: {type(exc).__name__}: {exc}")
                return
            finally:
                await handle.close()
                verdict.completions.append(time.monotonic())
            if result == expected(i):
                verdict.ok += 1
            else:
                verdict.wrong.append(f"{wf_id}: {result!r} != {expected(i)}")
        done += 1
        if progress is not None:
            await progress(done)

    await asyncio.gather(*(one(i) for i in range(n)))
    verdict.ended_at = time.monotonic()
    return verdict


async def find_duplicates(client: Client, work: Path, verdict: Verdict) -> None:
    """Task bodies that ran after their completion had been recorded (at-least-once is allowed before
    the record; after it, replay must have returned the recorded outcome)."""
    runs: dict[tuple[str, str], list[float]] = defaultdict(list)
    log = work / TASK_LOG
    if not log.exists():
        return
    for line in log.read_text().splitlines():
        wf_id, name, when = line.split()
        runs[(wf_id, name)].append(float(when))
    by_run: dict[str, list[str]] = defaultdict(list)
    for (wf_id, name), times in runs.items():
        if len(times) > 1:
            by_run[wf_id].append(name)
    for wf_id, names in by_run.items():
        completed: dict[str, float] = {}
        for event in await client.get_history(wf_id):
            if event.kind == HistoryKind.task_completed and event.msg.task_name not in completed:
                completed[event.msg.task_name] = event.timestamp.timestamp()
        for name in names:
            recorded = completed.get(name)
            if recorded is None:
                continue
            late = [t for t in runs[(wf_id, name)] if t > recorded]
            if late:
                verdict.duplicates.append(f"{wf_id} {name} ran {len(late)} more time(s) after its "
                                          "completion was recorded")


def describe_counts(verdict: Verdict) -> dict[str, Any]:
    return {"ok": verdict.ok, "wrong": len(verdict.wrong), "failed": len(verdict.failed),
            "start_errors": len(verdict.start_errors), "lost": len(verdict.lost),
            "duplicates": len(verdict.duplicates)}


async def load_with_faults(client: Client, n: int, concurrency: int, deadline: float,
                           at: tuple[float, ...], fault: Callable[[], Awaitable[None]]) -> Verdict:
    """``run_load`` that runs ``fault()`` (in a task of its own) when each fraction in ``at`` of the runs
    has finished; waits for the faults before returning."""
    pending = list(at)
    faults: list[asyncio.Future[None]] = []

    async def progress(done: int) -> None:
        while pending and done >= pending[0] * n:
            pending.pop(0)
            faults.append(asyncio.ensure_future(fault()))

    verdict = await run_load(client, n, concurrency, deadline, progress)
    await asyncio.gather(*faults)
    return verdict
