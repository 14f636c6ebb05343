"""The small worker programs of tests/support/doc_examples run as written, as real processes, through
their import paths."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from support.processes import ChildProcess, worker_env
from support.sdk import wait_history
from ulid import ULID

from grctl.client.client import Client
from grctl.models.errors import WorkflowTypeNotRegisteredError
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(90)

EXAMPLES = Path(__file__).resolve().parents[1] / "support" / "doc_examples"


def script(name: str, env: dict[str, str], *args: str) -> ChildProcess:
    return ChildProcess([sys.executable, str(EXAMPLES / name), *args], env, cwd=EXAMPLES).start()


async def run_when_registered(client: Client, wf_type: str, input: Any, timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            handle = await client.start_workflow(wf_type, f"doc-{ULID()}", input)
            return await handle.result(timeout=timeout)
        except WorkflowTypeNotRegisteredError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def exit_code(proc: ChildProcess, timeout: float = 15) -> int:
    return await asyncio.to_thread(proc.wait, timeout)


async def test_basic_setup(engine: Any, connection: Connection, subprocess_env: dict[str, str]) -> None:
    proc = script("basic_setup.py", subprocess_env)
    try:
        result = await run_when_registered(Client(connection), "ProcessOrder", {"order_id": "A-1"})
        assert result == "ProcessOrder processed A-1"
    finally:
        proc.stop()


async def test_multiple_types(engine: Any, connection: Connection, subprocess_env: dict[str, str]) -> None:
    proc = script("multiple_types.py", subprocess_env)
    client = Client(connection)
    try:
        for wf_type in ("ProcessOrder", "ProcessPayment", "SendNotification"):
            assert await run_when_registered(client, wf_type, {"order_id": "x"}) == f"{wf_type} processed x"
    finally:
        proc.stop()


async def test_graceful_shutdown_finishes_in_flight_step(
        engine: Any, connection: Connection, subprocess_env: dict[str, str]) -> None:
    proc = script("graceful_shutdown.py", subprocess_env)
    client = Client(connection)
    try:
        await run_when_registered(client, "ProcessOrder", {"order_id": "warm"})
        handle = await client.start_workflow("ProcessOrder", f"doc-{ULID()}",
                                             {"order_id": "B", "seconds": 1.5})
        await wait_history(client, handle.wf_id, "step.started")  # in flight when the signal comes
        proc.signal(signal.SIGINT)
        assert await handle.result(timeout=10) == "ProcessOrder processed B"
        await exit_code(proc)
        assert "stopped, connection closed: True" in proc.output
    finally:
        proc.stop()


async def test_os_signals(engine: Any, connection: Connection, subprocess_env: dict[str, str]) -> None:
    proc = script("os_signals.py", subprocess_env)
    client = Client(connection)
    try:
        await run_when_registered(client, "ProcessOrder", {"order_id": "warm"})
        handle = await client.start_workflow("ProcessOrder", f"doc-{ULID()}",
                                             {"order_id": "C", "seconds": 1.0})
        await wait_history(client, handle.wf_id, "step.started")
        proc.signal(signal.SIGTERM)
        assert await handle.result(timeout=10) == "ProcessOrder processed C"
        assert await exit_code(proc) == 0
    finally:
        proc.stop()


async def test_custom_logger(engine: Any, connection: Connection, subprocess_env: dict[str, str]) -> None:
    proc = script("custom_logger.py", subprocess_env)
    try:
        await run_when_registered(Client(connection), "ProcessOrder", {"order_id": "L-7"})
        await asyncio.to_thread(proc.wait_for_line, "my_app.workflows: processing L-7 in ProcessOrder", 5)
    finally:
        proc.stop()


async def test_remote_server_and_documented_env_spelling(
        engine: Any, connection: Connection, subprocess_env: dict[str, str], nats_url: str) -> None:
    env = {k: v for k, v in subprocess_env.items() if k != "GRCTL_NATS_SERVERS"}
    explicit = script("remote_server.py", env, nats_url)  # servers passed to Connection.connect
    client = Client(connection)
    try:
        assert await run_when_registered(client, "ProcessOrder", {"order_id": "R"}) == \
            "ProcessOrder processed R"
    finally:
        explicit.stop()
    lower = script("basic_setup.py", worker_env(env, grctl_NATS_SERVERS=nats_url))
    try:
        assert await run_when_registered(client, "ProcessOrder", {"order_id": "S"}) == \
            "ProcessOrder processed S"
    finally:
        lower.stop()
