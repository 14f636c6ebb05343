"""Shared fixtures: a real nats-server with JetStream on a free loopback port, stopped by pid."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


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
