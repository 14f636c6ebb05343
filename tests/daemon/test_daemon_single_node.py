"""grctld as a single node: embedded nats-server and engine, two worker processes, JSON logs with the
workflow logger, and a crashed engine restarted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from daemonkit import Daemon, config_text, daemon_env, run, write_atomic, write_flows

from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(120)


def entries(d: Daemon) -> list[dict[str, object]]:
    return [json.loads(line) for line in d.output.splitlines() if line.startswith("{")]


async def test_single_node_with_json_logs_two_processes_and_an_engine_restart(
    tmp_path: Path,
    subprocess_env: dict[str, str],
) -> None:
    port = free_port()
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    text = config_text(None, shutdown="2s", engine=True).replace("logging: {level: info}\n", "")
    text += (
        f"nats:\n  embedded: {{port: {port}, store_dir: nats-store}}\n"
        "logging:\n  format: json\n  workflow_logger: {name: myapp.flows, level: debug}\n"
        "worker: {processes: 2, max_concurrent_steps: 4}\n"
    )
    write_atomic(config, text.replace("worker: {ready_timeout: 30s}\n", ""))
    url = f"nats://127.0.0.1:{port}"
    d = Daemon(config, daemon_env(subprocess_env, tmp_path)).start()
    try:
        pids = d.ready_pids(1)
        assert len(pids) == 2
        assert (tmp_path / "nats-store" / "jetstream").is_dir()  # store_dir relative to the config file
        results = await asyncio.gather(*(run(url, "Quick", f"json-{i}", {"n": i}) for i in range(6)))
        assert {r["pid"] for r in results} <= set(pids)

        logs = entries(d)  # every line is one JSON object
        assert len(logs) == len(d.output.splitlines())
        said = [e for e in logs if e["logger"] == "myapp.flows"]
        assert {e["message"] for e in said} >= {f"quick run {i}" for i in range(6)}
        assert all(e["role"] == "worker" and e["generation"] == 1 and e["pid"] in pids for e in said)

        # the embedded engine crashes: it is restarted and runs go on
        engine = next(e["pid"] for e in logs if e["role"] == "engine")
        assert isinstance(engine, int)
        os.kill(engine, signal.SIGKILL)
        d.wait_for(rf"the embedded engine \(pid {engine}\) exited with code -9")
        found = d.wait_for(r"engine \(pid (\d+)\) replaced the crashed process")
        assert psutil.pid_exists(int(found.group(1)))
        assert (await run(url, "Quick", "after-engine-crash", {"n": 7}))["n"] == 7

        d.signal(signal.SIGTERM)
        assert await asyncio.to_thread(d.wait_exit, 30) == 0
        assert not any(
            psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
        )
    finally:
        d.stop()
