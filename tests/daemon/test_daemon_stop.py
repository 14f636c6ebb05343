"""grctld end to end: SIGTERM/SIGINT stops and crashed worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from daemonkit import (
    Daemon,
    NotifySocket,
    config_text,
    daemon_env,
    gone,
    run,
    wait_file,
    write_atomic,
    write_flows,
)

from grctl.daemon.procs import stop_budget

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def start(daemons: list[Daemon], tmp_path: Path, env: dict[str, str], text: str, **extra: str) -> Daemon:
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    write_atomic(config, text)
    d = Daemon(config, daemon_env(env, tmp_path, **extra)).start()
    daemons.append(d)
    return d


async def test_sigterm_lets_the_running_step_finish_and_exits_0(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    d = start(daemons, tmp_path, subprocess_env, config_text([nats_url], shutdown="20s"),
              NOTIFY_SOCKET=str(notify.path))
    pid = d.ready_pids(1)[0]
    slow = asyncio.create_task(run(nats_url, "Slow", "term-1", {"seconds": 2.5, "tag": "t1"}))
    await wait_file(tmp_path / "marks" / "t1.started")
    d.signal(signal.SIGTERM)
    assert await asyncio.to_thread(d.wait_exit, 30) == 0
    # systemd is asked to wait for the whole drain, whatever its TimeoutStopSec
    stopping = notify.messages[notify.wait_for("STOPPING")]
    notify.close()
    assert int(stopping["EXTEND_TIMEOUT_USEC"]) == stop_budget(20) * 1_000_000 > 2 * 20 * 1_000_000
    assert (tmp_path / "marks" / "t1.done").read_text() == str(pid)
    assert await asyncio.wait_for(slow, 20) == {"tag": "t1", "version": "v1", "pid": pid}
    assert await gone(pid)
    d.wait_for("stopped$")


async def test_sigterm_with_a_step_longer_than_shutdown_timeout_exits_in_time(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
) -> None:
    d = start(daemons, tmp_path, subprocess_env, config_text([nats_url], shutdown="1s"))
    pid = d.ready_pids(1)[0]
    slow = asyncio.create_task(run(nats_url, "Slow", "term-2", {"seconds": 60, "tag": "t2"}))
    await wait_file(tmp_path / "marks" / "t2.started")
    began = time.monotonic()
    d.signal(signal.SIGTERM)
    assert await asyncio.to_thread(d.wait_exit, 30) == 0
    elapsed = time.monotonic() - began
    assert elapsed < 1 + 5 + 2, f"took {elapsed:.1f}s for a 1s shutdown timeout"  # timeout + kill margin
    assert not (tmp_path / "marks" / "t2.done").exists()
    assert await gone(pid)
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)


async def test_second_sigint_stops_at_once(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
) -> None:
    d = start(daemons, tmp_path, subprocess_env, config_text([nats_url], shutdown="60s"))
    pid = d.ready_pids(1)[0]
    slow = asyncio.create_task(run(nats_url, "Slow", "int-1", {"seconds": 60, "tag": "i1"}))
    await wait_file(tmp_path / "marks" / "i1.started")
    d.signal(signal.SIGINT)
    d.wait_for("SIGINT: stopping gracefully")
    began = time.monotonic()
    d.signal(signal.SIGINT)
    assert await asyncio.to_thread(d.wait_exit, 10) == 130
    assert time.monotonic() - began < 3
    assert await gone(pid, timeout=5)
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)


async def test_a_killed_worker_process_is_replaced_and_the_run_completes(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
) -> None:
    d = start(daemons, tmp_path, subprocess_env, config_text([nats_url], shutdown="5s"))
    first = d.ready_pids(1)[0]
    slow = asyncio.create_task(run(nats_url, "Slow", "crash-1", {"seconds": 1.5, "tag": "c1"}))
    await wait_file(tmp_path / "marks" / "c1.started")
    os.kill(first, signal.SIGKILL)
    d.wait_for(rf"worker 1\.0 \(pid {first}\) exited unexpectedly with code -9")
    replaced = d.wait_for(r"worker 1\.0 \(pid (\d+)\) replaced the crashed process")
    second = int(replaced.group(1))
    assert second != first and psutil.pid_exists(second)
    result = await asyncio.wait_for(slow, 40)
    assert result["tag"] == "c1" and result["pid"] == second  # the step ran again on the new process
    assert (await run(nats_url, "Quick", "after-crash", {"n": 1}))["pid"] == second
    d.signal(signal.SIGTERM)
    assert await asyncio.to_thread(d.wait_exit, 30) == 0


async def test_a_worker_that_keeps_crashing_is_restarted_with_growing_pauses(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
) -> None:
    d = start(daemons, tmp_path, subprocess_env, config_text([nats_url], shutdown="2s"))
    pid = d.ready_pids(1)[0]
    # the module now fails to import: every restart fails, and the pauses grow (not a tight loop)
    flows = tmp_path / "flows" / "testflows.py"
    write_atomic(flows, flows.read_text() + "\nraise SystemExit(7)\n")
    os.kill(pid, signal.SIGKILL)
    pauses = [float(d.wait_for(r"restarting worker 1\.0 .*in ([\d.]+)s", after=0, timeout=20).group(1))]
    for _ in range(2):
        mark = d.mark()
        d.wait_for(
            r"worker 1\.0 .* did not start: .*grctl\.yaml:1:13: workflows\[0\]: cannot import 'testflows'",
            after=mark,
        )
        pauses.append(float(d.wait_for(r"in ([\d.]+)s$", after=mark, timeout=20).group(1)))
    assert pauses == [0.5, 1.0, 2.0]
    d.signal(signal.SIGTERM)
    assert await asyncio.to_thread(d.wait_exit, 30) == 0
