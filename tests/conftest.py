"""Shared fixtures: a real nats-server with JetStream on a free loopback port (or a cluster of three),
stopped by pid."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from grctl.client.client import Client
from grctl.engine import Engine
from grctl.models import Command, CommandKind, DescribeCmd, encode_command, utcnow
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# Under CI=true a skipped test fails the run (the hooks' module says why).
from support.ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402, F401
from support.cluster import NatsCluster  # noqa: E402 (needs the path above)
from support.pkgkit import (  # noqa: E402, F401 (the packages, built once per session)
    deb,
    deb_build,
    deb_source,
    rpm,
    rpm_build,
    srpm,
    unpacked,
)
from support.sdk import StartWorker, workers  # noqa: E402


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    server = NatsServerProcess(store_dir=tmp_path / "nats-store", log_file=tmp_path / "nats.log")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def nats_url(nats_server: NatsServerProcess) -> str:
    return nats_server.url


@pytest.fixture
async def connection(nats_url: str) -> AsyncIterator[Connection]:
    conn = await Connection.connect([nats_url])
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def subprocess_env(nats_url: str) -> dict[str, str]:
    """Environment for child processes: the test's NATS server and the project importable."""
    env = dict(os.environ)
    env["GRCTL_NATS_SERVERS"] = nats_url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- engine fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def engine(nats_url: str) -> AsyncIterator[Engine]:
    """An in-process engine on the test's nats-server (its own connection), stopped after the test.

    Short worker-command timeout so tests that end runs without a live worker do not linger. The sweep
    of acknowledged messages runs only when a test calls ``engine.sweeper.sweep()``, so tests that read
    directives, tasks or background tasks see them."""
    conn = await Connection.connect([nats_url], name="grctl-engine-test")
    eng = Engine(conn, worker_cmd_timeout=2.0, sweep_interval=3600)
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop(timeout=10)
        await conn.close()


@pytest.fixture
async def client(engine: Engine, connection: Connection) -> Client:
    """A client on the test's connection, with the in-process engine running."""
    return Client(connection)


@pytest.fixture
async def start_worker(engine: Engine, nats_url: str) -> AsyncIterator[StartWorker]:
    """Start in-process workers on the test's nats-server (with the in-process engine); all are stopped
    after the test."""
    async with workers(nats_url) as start:
        yield start


async def wait_engine_ready(nats_url: str, timeout: float = 20.0) -> None:
    """Until an engine answers on the API (any reply counts, e.g. "run not found")."""
    conn = await Connection.connect([nats_url], name="grctl-engine-probe")
    cmd = encode_command(Command(id="probe", kind=CommandKind.run_describe, timestamp=utcnow(),
                                 msg=DescribeCmd(wf_id="engine-ready-probe"), sender_id="c:probe"))
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            try:
                await conn.nc.request("grctl_api.workflow.engine-ready-probe", cmd, timeout=0.5)
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"no engine answered on {nats_url} within {timeout}s") from None
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def _engine_child(nats_url: str, env: dict[str, str], log_path: Path,
                        *extra: str) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``python -m grctl engine -s URL [extra]`` as a child process, ready when yielded, stopped by pid
    with SIGTERM (SIGKILL if it lingers)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", nats_url, *extra], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        await wait_engine_ready(nats_url)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
async def engine_process(nats_url: str, subprocess_env: dict[str, str],
                         tmp_path: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """The engine as a child process (log in tmp_path/engine.log)."""
    async for proc in _engine_child(nats_url, subprocess_env, tmp_path / "engine.log"):
        yield proc


@pytest.fixture
async def engine_http(nats_url: str, subprocess_env: dict[str, str], tmp_path: Path) -> AsyncIterator[str]:
    """The engine as a child process with its HTTP listener (``/metrics``, the console); yields the
    listener's host:port."""
    listen = f"127.0.0.1:{free_port()}"
    async for _ in _engine_child(nats_url, subprocess_env, tmp_path / "engine.log", "--http", listen):
        yield listen


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three nats-server nodes clustered on loopback (JetStream store per node under tmp_path), ready
    with a meta leader when yielded; every node stopped by pid afterwards."""
    cluster = NatsCluster(3, root=tmp_path / "cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.cleanup()
