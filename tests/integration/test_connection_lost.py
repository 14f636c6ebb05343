"""A component whose NATS connection is closed for good (nats-py does so when the server answers with a
protocol error, e.g. a line longer than the server allows) must not go on deaf: the connection says so,
a worker's ``start()`` ends with ``ConnectionLostError``, and the engine program exits non-zero so that
its supervisor (systemd, grctld) starts it again."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from grctl.models import Command, CommandKind, RegisterCmd, WorkflowTypeDef, encode_command, utcnow
from grctl.nats import subjects
from grctl.nats.connection import Connection, ConnectionLostError
from grctl.nats.server import NatsServerProcess, free_port
from grctl.worker.context import Context
from grctl.worker.worker import Worker
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
# More than a server accepts on one protocol line (4096 bytes by default).
TOO_LONG_SUBJECT = "x." * 3000 + "y"

idle = Workflow("Idle")


@idle.start()
async def idle_start(ctx: Context) -> None:
    return ctx.next.complete(None)


async def test_the_connection_tells_when_it_is_closed_for_good(nats_url: str) -> None:
    conn = await Connection.connect([nats_url])
    stop = asyncio.Event()
    serving = asyncio.create_task(conn.serve_until(stop))
    await conn.nc.publish(TOO_LONG_SUBJECT, b"")
    with pytest.raises(ConnectionLostError):
        await asyncio.wait_for(serving, 10)
    assert conn.lost.is_set() and conn.is_closed


async def test_closing_a_connection_on_purpose_is_not_a_loss(nats_url: str) -> None:
    conn = await Connection.connect([nats_url])
    await conn.close()  # the closed callback has run when close() returns
    assert conn.is_closed and not conn.lost.is_set()


async def test_a_worker_whose_connection_is_lost_stops_with_an_error(nats_url: str, engine: object) -> None:
    conn = await Connection.connect([nats_url])
    worker = Worker([idle], conn)
    running = asyncio.create_task(worker.start())
    await worker.wait_ready(15)
    await conn.nc.publish(TOO_LONG_SUBJECT, b"")  # the server drops the connection for good
    with pytest.raises(ConnectionLostError):
        await asyncio.wait_for(running, 10)


def tight_server(tmp_path: Path) -> NatsServerProcess:
    """A nats-server accepting protocol lines of at most 300 bytes, so a legal 250-byte workflow type
    makes the engine send a line the server refuses."""
    config = tmp_path / "tight.conf"
    config.write_text("max_control_line: 300\n")
    return NatsServerProcess(store_dir=tmp_path / "store", config_file=config, log_file=tmp_path / "nats.log")


async def test_the_engine_exits_non_zero_when_its_connection_is_lost(tmp_path: Path) -> None:
    server = tight_server(tmp_path).start()
    try:
        engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", server.url],
                                  stdout=subprocess.DEVNULL, stderr=open(tmp_path / "engine.log", "wb"),
                                  cwd=ROOT)
        conn = await Connection.connect([server.url])
        try:
            cmd = Command(id="reg-1", kind=CommandKind.worker_register, timestamp=utcnow(), sender_id="w",
                          msg=RegisterCmd(worker_id="w", types=[WorkflowTypeDef(type="T" * 250)]))
            for _ in range(100):  # until the engine is subscribed; its reply never comes
                try:
                    await conn.nc.request(subjects.API_WORKER, encode_command(cmd), timeout=0.5)
                except Exception as exc:
                    if "no responders" not in str(exc).lower():
                        break
                    await asyncio.sleep(0.1)
            code = await asyncio.to_thread(engine.wait, 20)
        finally:
            await conn.close()
            if engine.poll() is None:
                engine.kill()
        log = (tmp_path / "engine.log").read_text()
        assert code == 1, log
        assert "closed for good" in log
    finally:
        server.cleanup()


async def test_an_engine_that_cannot_reach_nats_still_stops_on_sigterm(tmp_path: Path) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    engine = subprocess.Popen([sys.executable, "-m", "grctl", "engine", "-s", nowhere],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "engine.log", "wb"), cwd=ROOT)
    try:
        for _ in range(200):  # until it has tried, and failed, to connect
            if "Connect call failed" in (tmp_path / "engine.log").read_text():
                break
            await asyncio.sleep(0.05)
        assert engine.poll() is None
        engine.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(engine.wait, 10) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
