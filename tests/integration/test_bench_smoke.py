"""Every benchmark of tests/bench/ runs here at a tiny size, so that none can rot unseen: each must exit 0,
which it does only when it met no error (a failed, lost or wrong run, a start error: tests/bench/figures.py
``problem``). Figures are not checked: at these sizes they mean nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "bench"

SMOKE = {
    "bench_chaos.py": ["-n", "40", "--concurrency", "20", "--scenario", "engine-kill",
                       "--scenario", "engine-and-worker-kill", "--scenario", "disk-full",
                       "--deadline", "120"],
    "bench_console.py": ["-n", "200", "--repeat", "2"],
    "bench_console_idle.py": ["-n", "20", "--concurrency", "10", "--rounds", "1"],
    "bench_cluster.py": ["-n", "20", "--concurrency", "10"],
    "bench_commit_floor.py": ["-n", "5"],
    "bench_drain.py": ["-n", "300", "--workers", "1"],
    "bench_engine_commit.py": ["-n", "50", "--concurrency", "20"],
    "bench_history_growth.py": ["--sizes", "0,50", "-n", "10"],
    "bench_list.py": ["-n", "300", "--repeat", "2"],
    "bench_metrics.py": ["-n", "20", "--concurrency", "10", "--rounds", "1"],
    "bench_overload.py": ["-n", "40", "--levels", "20", "--deadline", "120"],
    "bench_schedules.py": ["--schedules", "2", "--seconds", "3", "--load", "10", "--load-runs", "30"],
    # seed 1's first round kills grctld, the engine, a worker and nats-server, in that order
    "bench_soak.py": ["--minutes", "0.3", "--rate", "10", "--kill-every", "3"],
    "bench_step_hops.py": ["-n", "5"],
    "bench_sync_interval.py": ["-n", "20", "--concurrency", "10", "--serial", "3"],
    "bench_throughput.py": ["-n", "20", "--concurrency", "10"],
    # the public SDK's Python 3.13 environment is made once (as for the interop tests), then cached
    "bench_vs_public.py": ["-n", "5", "--rounds", "1", "--concurrency", "5"],
}
HELPERS = {"benchkit.py", "bench_worker.py", "bench_workflows.py", "figures.py"}  # not benchmarks


def test_every_benchmark_has_a_smoke_run() -> None:
    scripts = {p.name for p in BENCH.glob("*.py")} - HELPERS
    assert scripts == set(SMOKE)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_smoke_run(script: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH / script), *SMOKE[script]], cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, (f"{script} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                                  f"{proc.stderr[-3000:]}")
