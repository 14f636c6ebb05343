"""grctld killed with SIGKILL: its embedded nats-server, engine and workers end with it, so that a
restart finds the port free and the store intact."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import psutil
import pytest
from daemonkit import Daemon, config_text, daemon_env, gone, run, write_atomic, write_flows

from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(180)


async def test_a_killed_grctld_takes_its_children_and_nats_server_along(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    port = free_port()
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    # the store inside the configuration file's directory: its writes must not wake the config watch
    write_atomic(config, config_text(None, shutdown="2s", engine=True)
                 + f"nats:\n  embedded: {{port: {port}, store_dir: nats-store}}\n")
    url = f"nats://127.0.0.1:{port}"
    env = daemon_env(subprocess_env, tmp_path)
    first = Daemon(config, env).start()
    second: Daemon | None = None
    try:
        workers = first.ready_pids(1)
        assert (await run(url, "Quick", "before-kill", {"n": 1}))["n"] == 1
        assert first.proc is not None
        children = psutil.Process(first.proc.pid).children(recursive=True)
        nats = [c.pid for c in children if c.name() == "nats-server"]
        assert len(nats) == 1 and set(workers) <= {c.pid for c in children} and len(children) >= 3

        os.kill(first.proc.pid, signal.SIGKILL)
        assert first.wait_exit(10) == -signal.SIGKILL
        for child in children:
            assert await gone(child.pid, timeout=30), f"{child.name()} (pid {child.pid}) outlived grctld"

        # the same file again: the port is free and the store kept what the first one wrote
        second = Daemon(config, env).start()
        second.ready_pids(1, timeout=60)
        assert (await run(url, "Quick", "after-restart", {"n": 2}))["n"] == 2
        second.signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait_exit, 30) == 0
        for daemon in (first, second):
            assert not [line for line in daemon.lines if re.search("written without a change", line)]
    finally:
        first.stop()
        if second is not None:
            second.stop()
