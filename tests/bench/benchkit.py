"""What the cluster and durability benchmarks share: engine and worker processes on given NATS URLs, a
load of three-step workflows (tests/support/wf_cluster.py) and its figures."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from figures import percentile, problem  # noqa: E402
from support.cluster_load import Load, Outcome, summary  # noqa: E402 (needs the path above)
from support.processes import ChildProcess  # noqa: E402

from grctl.client.client import Client  # noqa: E402
from grctl.nats.connection import Connection  # noqa: E402


class Deployment:
    """``engines`` engine processes (``--replicas``) and one worker process on ``urls``; logs in
    ``logs``. Ended by pid."""

    def __init__(self, urls: list[str], logs: Path, engines: int = 1, replicas: int = 1) -> None:
        self.urls = urls
        env = dict(os.environ, GRCTL_NATS_SERVERS=",".join(urls), PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
        env.pop("GRCTL_TEST_DIR", None)  # no task traces: they would cost file writes
        logs.mkdir(parents=True, exist_ok=True)
        self.engines = [ChildProcess([sys.executable, "-m", "grctl", "engine", "--replicas", str(replicas)],
                                     env, cwd=ROOT, log_path=logs / f"engine{i}.log") for i in range(engines)]
        self.worker = ChildProcess([sys.executable, "-m", "support.run_worker", "support.wf_cluster",
                                    "--max-concurrent", "200"], env, cwd=ROOT / "tests",
                                   log_path=logs / "worker.log")

    def start(self) -> Deployment:
        for engine in self.engines:
            engine.start().wait_for_line("engine running", timeout=60, anywhere=True)
        self.worker.start().wait_for_line("READY ", timeout=60)
        return self

    def stop(self) -> None:
        for proc in (self.worker, *self.engines):
            proc.stop()


@dataclass
class Figures:
    """Throughput and latency of the runs that completed right; the others are counted apart (failed:
    an error or a wrong result; lost: no outcome in time; not started), never inside the figures."""

    label: str
    runs: int
    wall: float
    latencies: list[float]
    failed: int
    lost: int = 0
    not_started: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall

    def line(self) -> str:
        lat = self.latencies or [float("nan")]
        p50, p99 = statistics.median(lat) * 1000, percentile(lat, 99) * 1000
        return (f"{self.label:34s} {self.rate:7.1f} workflows/s  latency p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
                f"  failed {self.failed}  lost {self.lost}  not started {self.not_started}")


async def run_load(urls: list[str], label: str, runs: int, concurrency: int,
                   on_progress: Callable[[int], None] | None = None,
                   result_timeout: float = 90.0) -> tuple[Figures, list[Outcome]]:
    conn = await Connection.connect(urls, name="bench-client")
    try:
        client = Client(conn)
        await Load(client, 5, concurrency=5, prefix=f"warm-{time.time_ns()}").run()  # registration, caches
        load = Load(client, runs, concurrency=concurrency, prefix=f"bench-{time.time_ns()}",
                    on_progress=on_progress, result_timeout=result_timeout)
        started = time.monotonic()
        outcomes = await load.run()
        wall = time.monotonic() - started
    finally:
        await conn.close()
    good = [o for o in outcomes if o.ok]
    lost = [o for o in outcomes if o.lost]
    not_started = [o for o in outcomes if o.not_started]
    failed = len(outcomes) - len(good) - len(lost) - len(not_started)
    figures = Figures(label, runs, wall, [o.latency for o in good], failed, len(lost), len(not_started))
    if len(good) < len(outcomes):
        problem(f"{label}: {summary(outcomes)}")
    return figures, outcomes

