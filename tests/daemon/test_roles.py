"""Roles from the same kind of file: an engine-only grctld, a worker-only grctld, ``grctl engine -c`` and
``grctl -c`` connecting with each way to authenticate that grctld supports."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from daemonkit import ROOT, Daemon, config_text, daemon_env, write_atomic, write_flows
from natsauth import SETUPS, auth_server
from support.processes import ChildProcess

from grctl.nats.server import NatsServerProcess

pytestmark = pytest.mark.timeout(180)


def grctl(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grctl", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


async def test_engine_only_and_worker_only_nodes(nats_server: NatsServerProcess,
                                                 subprocess_env: dict[str, str], tmp_path: Path) -> None:
    env = daemon_env(subprocess_env, tmp_path)
    engine_dir, worker_dir = tmp_path / "engine-host", tmp_path / "worker-host"
    engine_dir.mkdir()
    write_flows(worker_dir / "flows", "v1")
    engine_cfg = engine_dir / "grctl.yaml"
    write_atomic(engine_cfg, f"engine: {{embedded: true}}\nnats:\n  servers: [{nats_server.url}]\n")
    worker_cfg = worker_dir / "grctl.yaml"
    write_atomic(worker_cfg, config_text([nats_server.url], shutdown="2s"))  # engine.embedded: false
    engine = Daemon(engine_cfg, env).start()
    worker = Daemon(worker_cfg, env).start()
    try:
        engine.wait_for(r"ready: engine only \(no workflows to run\)")
        assert "starting generation" not in engine.output  # no worker process on an engine-only node
        worker.ready_pids(1)
        out = await asyncio.to_thread(grctl, env, "-c", str(worker_cfg), "run", "Quick", "--id", "roles-1",
                                      "--input", '{"n": 5}')
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["n"] == 5
        for daemon in (worker, engine):
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait_exit, 30) == 0
    finally:
        worker.stop()
        engine.stop()


def test_grctld_refuses_a_file_with_nothing_to_run(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    cfg = tmp_path / "grctl.yaml"
    cfg.write_text("nats:\n  servers: [nats://127.0.0.1:4222]\n")
    out = subprocess.run([sys.executable, "-m", "grctl.daemon", "-c", str(cfg), "--check-config"],
                         env=daemon_env(subprocess_env, tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "nothing to run: list workflow modules, or set engine.embedded: true" in out.stderr


@pytest.mark.parametrize("kind", list(SETUPS))
async def test_engine_and_cli_connect_like_grctld(kind: str, tmp_path: Path,
                                                  subprocess_env: dict[str, str]) -> None:
    setup = SETUPS[kind](tmp_path)
    server = auth_server(setup, tmp_path)
    server.start()
    url = f"{setup.scheme}://127.0.0.1:{server.port}"
    env = daemon_env(subprocess_env, tmp_path, **setup.env)
    write_flows(tmp_path / "flows", "v1")
    shared = tmp_path / "grctl.yaml"  # the worker host's file; the engine and the CLI read it too
    write_atomic(shared, config_text([url], shutdown="2s") + setup.nats)
    wrong = tmp_path / "wrong.yaml"
    write_atomic(wrong, config_text([url], shutdown="2s") + setup.wrong)
    engine = ChildProcess([sys.executable, "-m", "grctl", "engine", "-c", str(shared)], env, cwd=ROOT,
                          log_path=tmp_path / "engine.log").start()
    worker = Daemon(shared, env)
    try:
        engine.wait_for_line("engine running", timeout=60, anywhere=True)
        worker.start().ready_pids(1)
        ran = await asyncio.to_thread(grctl, env, "-c", str(shared), "run", "Quick", "--id", f"cli-{kind}",
                                      "--input", '{"n": 3}')
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["n"] == 3
        described = await asyncio.to_thread(grctl, env, "describe", f"cli-{kind}", "--json",
                                            "-c", str(shared))  # -c after the subcommand too
        assert described.returncode == 0 and json.loads(described.stdout)["status"] == "completed"
        # without the credentials the server refuses the CLI: a clear error, no secret shown
        refused = await asyncio.to_thread(grctl, env, "-c", str(wrong), "describe", f"cli-{kind}")
        assert refused.returncode == 7, refused
        assert "cannot connect to NATS" in refused.stderr
        for output in (engine.output, refused.stderr, ran.stderr, worker.output):
            assert not [s for s in setup.secrets if s in output]
    finally:
        worker.stop()
        engine.stop()
        server.cleanup()


def test_engine_says_why_a_single_server_cannot_hold_three_replicas(nats_server: NatsServerProcess,
                                                                     subprocess_env: dict[str, str],
                                                                     tmp_path: Path) -> None:
    out = grctl(daemon_env(subprocess_env, tmp_path), "engine", "-s", nats_server.url, "--replicas", "3")
    assert out.returncode == 1, out
    assert "cannot create stream grctl_state with 3 replica(s): 3 replicas need a JetStream cluster and " \
           "this NATS server is not clustered" in out.stderr
    assert "Traceback" not in out.stderr
