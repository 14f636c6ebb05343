"""grctld's HTTP listener (``http.listen``) with a real daemon: /readyz follows the generation and the
NATS connection, /metrics adds up the counts of two worker processes (parsed with prometheus_client's
parser), reloads are counted by outcome, and the embedded engine serves its own metrics."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import psutil
import pytest
from daemonkit import Daemon, config_text, daemon_env, run, wait_file, write_atomic, write_flows
from support.scrape import aget, value, wait_status, wait_value

from grctl.nats.server import NatsServerProcess, free_port

pytestmark = pytest.mark.timeout(180)

QUICK_RUNS = 8


async def test_metrics_of_two_worker_processes_add_up_and_reloads_are_counted(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    nats_port, http_port, engine_port = free_port(), free_port(), free_port()
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    # One workflow type: with one step slot per process, each process takes one of the two slow steps.
    text = config_text(None, shutdown="5s", workflows="['testflows:slow']")
    text = text.replace("worker: {ready_timeout: 30s}\n", "")
    text += (
        f"nats:\n  embedded: {{port: {nats_port}, store_dir: nats-store}}\n"
        f"engine:\n  embedded: true\n  http: {{listen: '127.0.0.1:{engine_port}'}}\n"
        f"http:\n  listen: 127.0.0.1:{http_port}\n"
        "worker: {processes: 2, max_concurrent_steps: 1, ready_timeout: 30s}\n"
    )
    write_atomic(config, text)
    url = f"nats://127.0.0.1:{nats_port}"
    base = f"http://127.0.0.1:{http_port}"
    metrics = f"{base}/metrics"
    marks = tmp_path / "marks"
    d = Daemon(config, daemon_env(subprocess_env, tmp_path)).start()
    try:
        await wait_status(f"{base}/healthz", 200)
        await wait_status(f"{base}/readyz", 200)
        pids = d.ready_pids(1)
        assert len(pids) == 2

        # one slow step per process (one slot each): both processes count, and the gauge adds them up
        slow = [asyncio.ensure_future(run(url, "Slow", f"slow-{i}", {"seconds": 60, "tag": f"s{i}"}))
                for i in range(2)]
        ran_on = {int(await wait_file(marks / f"s{i}.started")) for i in range(2)}
        assert ran_on == set(pids)
        text = await wait_value(metrics, "grctl_worker_steps_in_flight", 2, wf_type="Slow")
        assert value(text, "grctl_worker_steps_started_total", wf_type="Slow") == 2
        for i in range(2):
            (marks / f"s{i}.release").touch()
        await asyncio.gather(*slow)

        results = await asyncio.gather(*(run(url, "Slow", f"q-{i}", {"seconds": 0, "tag": f"q{i}"})
                                         for i in range(QUICK_RUNS)))
        assert {r["pid"] for r in results} <= set(pids)
        runs = QUICK_RUNS + 2
        text = await wait_value(metrics, "grctl_worker_steps_finished_total", runs, wf_type="Slow",
                                outcome="ok")
        assert value(text, "grctl_worker_steps_started_total", wf_type="Slow") == runs
        assert value(text, "grctl_worker_step_duration_seconds_count", wf_type="Slow") == runs
        assert value(text, "grctl_worker_steps_in_flight", wf_type="Slow") == 0
        assert value(text, "grctl_daemon_generations_started_total") == 1
        assert value(text, "grctl_daemon_generation") == 1
        assert value(text, "grctl_daemon_ready") == 1
        assert value(text, "grctl_daemon_config_last_load_timestamp_seconds") > 1.7e9
        first_load = value(text, "grctl_daemon_config_last_load_timestamp_seconds")

        engine_text = await wait_value(f"http://127.0.0.1:{engine_port}/metrics",
                                       "grctl_engine_runs_ended_total", runs, wf_type="Slow",
                                       status="completed")
        assert value(engine_text, "grctl_engine_runs_started_total", wf_type="Slow") == runs
        assert (await aget(f"http://127.0.0.1:{engine_port}/readyz"))[0] == 200
        assert value(text, "grctl_engine_runs_started_total") == 0  # the engine is scraped on its own

        # a reload: counted, and the old generation's counts stay in the sum
        mark = d.mark()
        d.signal(signal.SIGHUP)
        d.ready_pids(2, after=mark)
        text = await wait_value(metrics, "grctl_daemon_reloads_total", 1, outcome="applied")
        assert value(text, "grctl_daemon_generations_started_total") == 2
        assert value(text, "grctl_daemon_config_last_load_timestamp_seconds") >= first_load
        assert value(text, "grctl_worker_steps_started_total", wf_type="Slow") == runs
        await run(url, "Slow", "after-reload", {"seconds": 0, "tag": "r"})
        await wait_value(metrics, "grctl_worker_steps_finished_total", runs + 1, wf_type="Slow")

        # an invalid edit is refused and counted; the running generation stays ready
        mark = d.mark()
        write_atomic(config, text_with_error(config.read_text()))
        d.wait_for("configuration not reloaded", after=mark)
        text = await wait_value(metrics, "grctl_daemon_reloads_total", 1, outcome="refused")
        assert value(text, "grctl_daemon_reloads_total", outcome="applied") == 1
        assert (await aget(f"{base}/readyz"))[0] == 200

        # the embedded nats-server dies: not ready (grctld does not restart it), still alive
        server = next(p for p in psutil.Process(d.pid).children() if p.name().startswith("nats-server"))
        server.kill()
        body = await wait_status(f"{base}/readyz", 503)
        assert "NATS" in body, body
        assert (await aget(f"{base}/healthz"))[0] == 200
    finally:
        d.stop()


def text_with_error(text: str) -> str:
    return text.replace("shutdown_timeout: 5s", "shutdown_timeout: five seconds")


async def test_readyz_is_503_while_nats_is_down(tmp_path: Path, subprocess_env: dict[str, str],
                                                nats_server: NatsServerProcess) -> None:
    http_port = free_port()
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    config_body = config_text([nats_server.url], shutdown="2s", engine=True)
    write_atomic(config, config_body.replace("python_path:", f"http: {{listen: '127.0.0.1:{http_port}'}}\n"
                                                            "python_path:"))
    base = f"http://127.0.0.1:{http_port}"
    d = Daemon(config, daemon_env(subprocess_env, tmp_path)).start()
    try:
        await wait_status(f"{base}/readyz", 200)
        nats_server.stop()
        body = await wait_status(f"{base}/readyz", 503)
        assert "NATS" in body, body
        assert (await aget(f"{base}/healthz"))[0] == 200  # grctld itself runs on
        text = (await aget(f"{base}/metrics"))[1]
        assert value(text, "grctl_daemon_ready") == 0
        nats_server.start()
        await wait_status(f"{base}/readyz", 200, timeout=60)
        await wait_value(f"{base}/metrics", "grctl_nats_reconnects_total", 1)
        assert (await run(nats_server.url, "Quick", "after-outage", {"n": 1}))["n"] == 1
    finally:
        d.stop()
