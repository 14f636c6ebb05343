"""Fault injection with real processes: a file-backed nats-server, an engine process, worker processes
and, when asked, a grctld host, all serving ``support.wf_chaos``; a load of ``Chaos`` runs from an
in-process client; faults (SIGKILL of the engine, a worker or grctld, a nats-server restart) while the
load runs; and the verdict: runs completed with the right result, failed, lost, and task bodies run
again after their completion was recorded. Used by tests/integration/test_chaos.py (small),
tests/bench/bench_chaos.py (large) and tests/bench/bench_soak.py (long).
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
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # (no stubs installed)
from ulid import ULID

from grctl.client.client import Client
from grctl.models.errors import StorageFullError, WorkflowError
from grctl.models.history import HistoryKind
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess, free_port

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))

from support.cluster_load import step_start_gaps  # noqa: E402
from support.grctld import Daemon  # noqa: E402
from support.processes import WorkerProcess  # noqa: E402
from support.proxy import BlackholeProxy  # noqa: E402
from support.storage_full import small_disk  # noqa: E402
from support.wf_chaos import TASK_LOG, TASK_SECONDS_ENV, TASKS, expected  # noqa: E402


@dataclass
class Verdict:
    """What happened to every run of a load."""

    ok: int = 0
    wrong: list[str] = field(default_factory=list)  # completed with a wrong result
    failed: list[str] = field(default_factory=list)  # the run ended failed/cancelled/timed out
    start_errors: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # no outcome within the deadline
    duplicates: list[str] = field(default_factory=list)  # a task body ran after its completion
    incomplete: list[str] = field(default_factory=list)  # a history that misses an event
    completions: list[float] = field(default_factory=list)  # monotonic times of right results
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # wf_id → (started, ended)
    faults: list[float] = field(default_factory=list)  # monotonic times the faults were injected
    task_bodies: int = 0  # executions of task bodies in the task log
    steps_restarted: int = 0  # steps picked up again (a worker lost them or the engine re-dispatched)
    refusals: list[float] = field(default_factory=list)  # seconds each start refused as storage full took
    refused_runs: set[str] = field(default_factory=set)  # runs whose start was refused at least once
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.wrong or self.failed or self.start_errors or self.lost or self.duplicates or
                    self.incomplete)

    def summary(self) -> str:
        refused = (f", starts refused as storage full {len(self.refusals)} ({len(self.refused_runs)} runs, "
                   f"each answered within {max(self.refusals):.2f} s)" if self.refusals else "")
        return (f"ok {self.ok}, wrong {len(self.wrong)}, failed {len(self.failed)}, start errors "
                f"{len(self.start_errors)}, lost {len(self.lost)}, duplicate task bodies "
                f"{len(self.duplicates)}, incomplete histories {len(self.incomplete)}{refused}; task bodies "
                f"run {self.task_bodies}, steps restarted {self.steps_restarted}, runs in flight at each "
                f"fault {[self.in_flight_at(t) for t in self.faults]}")

    def in_flight_at(self, moment: float) -> int:
        """Runs started before ``moment`` (a monotonic time) and not finished by then: the work a fault
        injected at that moment interrupted."""
        return sum(start <= moment < end for start, end in self.spans.values())

    def details(self, limit: int = 5) -> str:
        parts = []
        for name in ("wrong", "failed", "start_errors", "lost", "duplicates", "incomplete"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}: {items[:limit]}")
        return "; ".join(parts)

    def recovery_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` (a monotonic time) to the first right result after it (failed and
        lost runs are counted apart, never as a recovery)."""
        later = [t for t in self.completions if t >= moment]
        return min(later) - moment if later else None


class System:
    """nats-server + engine process + worker processes (+ a grctld host with ``grctld``) in ``work``;
    every process ended by pid (grctld and its children by the process group it was started in)."""

    def __init__(self, work: Path, workers: int = 1, max_concurrent: int = 64,
                 worker_env: dict[str, str] | None = None, engine_args: list[str] | None = None,
                 engines: int = 1, proxied_workers: int = 0, grctld: bool = False, store_mb: int = 0,
                 engine_http: bool = False) -> None:
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.nats = NatsServerProcess(store_dir=work / "nats", log_file=work / "nats.log")
        self.n_workers = workers
        self.max_concurrent = max_concurrent
        self.extra_worker_env = worker_env or {}
        self.engine_args = engine_args or []
        self.n_engines = engines
        self.n_proxied = proxied_workers  # workers that reach nats-server through ``proxy``
        self.proxy: BlackholeProxy | None = None
        self.engines: list[subprocess.Popen[bytes]] = []
        self.engine_starts = 0
        self.workers: list[WorkerProcess] = []
        self.worker_starts = 0
        self.with_grctld = grctld
        self.grctld: Daemon | None = None
        self.grctld_workers: list[int] = []  # the worker processes of grctld's current generation
        self.grctld_starts = 0
        self.store_mb = store_mb  # the store on a tmpfs of this size (mounting needs root)
        self.mounts = ExitStack()
        # the engine's listener (/readyz, /metrics), on the same port at every start
        self.ops = f"http://127.0.0.1:{free_port()}" if engine_http else None
        self.notes: list[str] = []  # what a fault observed, for the report
        self.defects: list[str] = []  # what a fault observed that must not be
        self.refusals: list[float] = []  # seconds each start a fault made was refused in (storage full)
        self.accepted_full = 0  # starts a fault made that a nearly full store took (freed room slipped in)
        # monotonic times the store was seen full, then given room again
        self.full_window: tuple[float, float] | None = None

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
        if self.store_mb:
            self.mounts.enter_context(small_disk(self.nats.store_dir, self.store_mb))
        self.nats.start()
        for _ in range(self.n_engines):
            self.start_engine()
        await wait_engine(self.url)
        for _ in range(self.n_workers):
            await self.start_worker()
        if self.n_proxied:
            self.proxy = await BlackholeProxy(self.nats.host, self.nats.port).start()
            for _ in range(self.n_proxied):
                await self.start_worker(self.proxy.url)
        if self.with_grctld:
            await self.start_grctld()

    def start_engine(self) -> None:
        self.engine_starts += 1
        with open(self.work / f"engine-{self.engine_starts}.log", "wb") as log:
            self.engines.append(subprocess.Popen(
                [sys.executable, "-m", "grctl", "engine", "-s", self.url, *self.engine_args,
                 *(["--http", self.ops.removeprefix("http://")] if self.ops else [])],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True))

    def kill_engine(self, index: int = 0) -> None:
        """SIGKILL the ``index``-th running engine (it leaves the list)."""
        engine = self.engines.pop(index)
        if engine.poll() is None:
            engine.kill()
            engine.wait()

    async def start_worker(self, url: str = "") -> WorkerProcess:
        """A worker process connected to ``url`` (default: the nats-server itself)."""
        self.worker_starts += 1
        env = self.env() | ({"GRCTL_NATS_SERVERS": url} if url else {})
        worker = WorkerProcess("support.wf_chaos", env, "--max-concurrent", str(self.max_concurrent))
        worker.log_path = self.work / f"worker-{self.worker_starts}.log"
        worker.start()
        self.workers.append(worker)
        await worker.ready(60)
        return worker

    async def replace_worker(self, index: int = 0) -> None:
        """SIGKILL a worker (once it runs a task body) and start another at once."""
        await self.kill_worker_busy(index)
        await self.start_worker()

    async def kill_worker_busy(self, index: int = 0) -> None:
        """SIGKILL a worker while it runs a task body, so that the kill interrupts work."""
        victim = self.workers.pop(index)
        await self._busy(victim)
        victim.kill()

    async def _busy(self, worker: WorkerProcess, within: float = 5.0) -> None:
        """Until ``worker`` runs a task body, by the task log (its pid on a line written less than half
        a body ago); after ``within`` seconds, or at once when task bodies take no time, anyway."""
        log = self.work / TASK_LOG
        body = float(self.extra_worker_env.get(TASK_SECONDS_ENV, "0"))
        deadline = time.monotonic() + (within if body else 0.0)
        while time.monotonic() < deadline:
            if log.exists() and _running_body(log, worker.pid, body / 2):
                return
            await asyncio.sleep(0.01)

    def grctld_config(self) -> Path:
        """A worker-only host's file: grctld's generation serves ``Chaos`` beside the plain workers,
        through the same nats-server, with the engine elsewhere."""
        directory = self.work / "grctld"
        directory.mkdir(exist_ok=True)
        config = directory / "grctl.yaml"
        config.write_text("\n".join([
            "workflows: [support.wf_chaos]",
            f"python_path: [{TESTS}]",
            "shutdown_timeout: 5s",
            "logging: {level: info}",
            f"worker: {{processes: 1, max_concurrent_steps: {self.max_concurrent}, ready_timeout: 60s}}",
            "engine: {embedded: false}",
            f"nats:\n  servers: [{self.url}]",
        ]) + "\n")
        return config

    async def start_grctld(self, timeout: float = 60.0) -> Daemon:
        """``grctld -c <file>`` (the same file at every start); returns once its generation is ready."""
        self.grctld_starts += 1
        daemon = Daemon(self.grctld_config(), self.env())
        daemon.start()
        self.grctld = daemon
        self.grctld_workers = await asyncio.to_thread(daemon.ready_pids, 1, 0, timeout)
        return daemon

    async def restart_grctld(self, outlive: float = 30.0) -> list[int]:
        """SIGKILL grctld, wait for its children to die with it (parent death), start it again with the
        same file. Returns the pids of children still alive ``outlive`` seconds after the kill (then
        SIGKILLed, so that the run goes on): each one is a defect."""
        daemon = self.grctld
        assert daemon is not None
        try:
            children = psutil.Process(daemon.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        daemon.kill()
        _, alive = await asyncio.to_thread(psutil.wait_procs, children, outlive)
        for child in alive:
            child.kill()
        await self.start_grctld()
        return [child.pid for child in alive]

    async def restart_nats(self, downtime: float, sig: int = signal.SIGTERM) -> None:
        if sig == signal.SIGKILL:
            self.nats.kill()
        else:
            await asyncio.to_thread(self.nats.stop)
        await asyncio.sleep(downtime)
        await asyncio.to_thread(self.nats.start)

    async def freeze_engine(self, seconds: float, index: int = 0) -> None:
        """SIGSTOP an engine for ``seconds``, then SIGCONT: a process that hangs instead of dying."""
        engine = self.engines[index]
        engine.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            engine.send_signal(signal.SIGCONT)

    async def freeze_worker(self, seconds: float, index: int = 0) -> None:
        """SIGSTOP a worker while it runs a task body, for ``seconds``, then SIGCONT."""
        worker = self.workers[index]
        await self._busy(worker)
        worker.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            worker.signal(signal.SIGCONT)

    async def stop(self) -> None:
        if self.grctld is not None:
            await asyncio.to_thread(self.grctld.stop)
        for worker in self.workers:
            worker.signal(signal.SIGCONT)  # a test may have left it frozen
            await asyncio.to_thread(worker.stop)
        if self.proxy is not None:
            await self.proxy.stop()
        for engine in self.engines:
            if engine.poll() is None:
                engine.send_signal(signal.SIGCONT)  # a test may have left it frozen
                engine.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(engine.wait, 15)
                except subprocess.TimeoutExpired:
                    engine.kill()
                    engine.wait()
        self.nats.stop()
        self.mounts.close()


def _running_body(log: Path, pid: int, within: float) -> bool:
    """Did ``pid`` start a task body less than ``within`` seconds ago (the last lines of the log)?"""
    with open(log, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 8192))
        tail = f.read().decode(errors="replace").splitlines()[1:]
    now = time.time()
    for line in reversed(tail):
        fields = line.split()
        if len(fields) == 4 and fields[3] == str(pid) and now - float(fields[2]) < within:
            return True
    return False


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
                   progress: Callable[[int], Awaitable[None]] | None = None,
                   refusal_pause: float | None = None) -> Verdict:
    """Start ``n`` Chaos runs, at most ``concurrency`` at a time, and wait for each outcome (at most
    ``deadline`` seconds after the load began). ``progress(done)`` is awaited after each outcome. With
    ``refusal_pause``, a start refused for lack of storage is counted apart (``Verdict.refusals``, never
    a start error) and sent again after that pause, as a client that backs off would."""
    verdict = Verdict(started_at=time.monotonic())
    gate = asyncio.Semaphore(concurrency)
    end = verdict.started_at + deadline
    done = 0
    prefix = f"chaos-{ULID()}".lower()

    async def one(i: int) -> None:
        nonlocal done
        wf_id = f"{prefix}-{i}"
        async with gate:
            while True:
                began = time.monotonic()
                try:
                    handle = await client.start_workflow("Chaos", wf_id, {"n": i})
                    break
                except StorageFullError as exc:
                    if refusal_pause is None or time.monotonic() + refusal_pause > end:
                        verdict.start_errors.append(f"{wf_id}: {type(exc).__name__}: {exc}")
                        return
                    verdict.refusals.append(time.monotonic() - began)
                    verdict.refused_runs.add(wf_id)
                    await asyncio.sleep(refusal_pause)
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
                verdict.spans[wf_id] = (began, time.monotonic())
            if result == expected(i):
                verdict.ok += 1
                verdict.completions.append(verdict.spans[wf_id][1])  # recovery counts right results only
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
    the record; after it, replay must have returned the recorded outcome), and histories that miss an
    event. The task log must hold every task of every run that completed: a check that read nothing
    would prove nothing."""
    runs: dict[tuple[str, str], list[float]] = defaultdict(list)
    log = work / TASK_LOG
    lines = log.read_text().splitlines() if log.exists() else []
    for line in lines:
        wf_id, name, when = line.split()[:3]
        runs[(wf_id, name)].append(float(when))
    verdict.task_bodies = len(lines)
    for wf_id in verdict.spans:
        missing = [name for name in TASKS if (wf_id, name) not in runs]
        if missing and wf_id not in verdict.lost:
            verdict.incomplete.append(f"{wf_id}: the task log has no line for {missing}")
    await check_histories(client, verdict)
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


async def check_histories(client: Client, verdict: Verdict) -> None:
    """Every step a run completed has its ``step.started`` before its ``step.completed``; counts the
    steps picked up more than once."""
    for wf_id in verdict.spans:
        if wf_id in verdict.lost:
            continue
        missing, restarted = step_start_gaps(await client.get_history(wf_id))
        verdict.incomplete += [f"{wf_id}: step {name} completed without step.started" for name in missing]
        verdict.steps_restarted += restarted


def describe_counts(verdict: Verdict) -> dict[str, Any]:
    return {"ok": verdict.ok, "wrong": len(verdict.wrong), "failed": len(verdict.failed),
            "start_errors": len(verdict.start_errors), "lost": len(verdict.lost),
            "duplicates": len(verdict.duplicates), "incomplete": len(verdict.incomplete),
            "steps_restarted": verdict.steps_restarted}


async def load_with_faults(client: Client, n: int, concurrency: int, deadline: float,
                           at: tuple[float, ...], fault: Callable[[], Awaitable[None]],
                           refusal_pause: float | None = None) -> Verdict:
    """``run_load`` that runs ``fault()`` (in a task of its own) when each fraction in ``at`` of the runs
    has finished; waits for the faults before returning."""
    pending = list(at)
    faults: list[asyncio.Future[None]] = []

    async def progress(done: int) -> None:
        while pending and done >= pending[0] * n:
            pending.pop(0)
            moments.append(time.monotonic())
            faults.append(asyncio.ensure_future(fault()))

    moments: list[float] = []
    verdict = await run_load(client, n, concurrency, deadline, progress, refusal_pause)
    verdict.faults = moments
    await asyncio.gather(*faults)
    return verdict
