"""Helpers for daemon tests: a real grctld subprocess, a real NOTIFY_SOCKET, real files.

The daemon runs in its own session so that a failed test can end it and its children together, by
the group id of the process it started (never by name).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from support.grctld import Daemon as Daemon  # one home, shared with the soak

ROOT = Path(__file__).resolve().parents[2]

FLOWS = """
import asyncio
import os
from datetime import timedelta
from pathlib import Path

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow

VERSION = "{version}"
MARKS = Path(os.environ["GRCTL_TEST_MARKS"])

quick = Workflow(workflow_type="Quick")


@quick.start(timeout=timedelta(seconds=30))
async def start(ctx: Context, n: int) -> Directive:
    ctx.logger.info("quick run %s", n)
    return ctx.next.complete({{"n": n, "version": VERSION, "pid": os.getpid()}})


slow = Workflow(workflow_type="Slow")


@slow.start(timeout=timedelta(seconds=120))
async def begin(ctx: Context, seconds: float, tag: str) -> Directive:
    (MARKS / f"{{tag}}.started").write_text(str(os.getpid()))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline and not (MARKS / f"{{tag}}.release").exists():  # the test may end it early
        await asyncio.sleep(0.05)
    (MARKS / f"{{tag}}.done").write_text(str(os.getpid()))
    return ctx.next.complete({{"tag": tag, "version": VERSION, "pid": os.getpid()}})
"""


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` the way editors and ConfigMaps do: write a temporary file, rename it over."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_flows(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "testflows.py"
    write_atomic(path, FLOWS.format(version=version))
    return path


def config_text(
    servers: list[str] | None = None,
    shutdown: str = "5s",
    extra: str = "",
    workflows: str = "[testflows]",
    engine: bool = False,
) -> str:
    lines = [
        f"workflows: {workflows}",
        "python_path: [flows]",
        f"shutdown_timeout: {shutdown}",
        "logging: {level: info}",
        "worker: {ready_timeout: 30s}",
    ]
    if engine:
        lines.append("engine: {embedded: true}")
    if servers is not None:  # last, so that ``extra`` may continue the nats section
        lines.append("nats:\n  servers: [" + ", ".join(servers) + "]")
    return "\n".join(lines) + "\n" + extra


def daemon_env(base: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(("GRCTL_", "grctl_", "ENGINE_NATS_SERVERS"))}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a module edited within the same second must not hit a stale .pyc
    env["ENGINE_NATS_WORKER_ACK_WAIT"] = "1"  # a killed worker's step comes back quickly
    env["GRCTL_TEST_MARKS"] = str(tmp_path / "marks")
    (tmp_path / "marks").mkdir(exist_ok=True)
    env.update(extra)
    return env


class NotifySocket:
    """A real unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._changed:
                self.messages.append(fields)
                self._changed.notify_all()

    def wait_for(
        self,
        key: str,
        value: str | None = None,
        timeout: float = 30.0,
        after: int = 0,
        prefix: str | None = None,
    ) -> int:
        """Index of the first message from ``after`` on with ``key`` (= ``value``, or starting with
        ``prefix``)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index, message in enumerate(self.messages[after:], start=after):
                    if (
                        key in message
                        and (value is None or message[key] == value)
                        and (prefix is None or message[key].startswith(prefix))
                    ):
                        return index
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no notification {key}={value}; got {self.messages}")
                self._changed.wait(min(left, 0.2))

    def states(self) -> list[str]:
        """The sequence of READY / RELOADING / STOPPING notifications received."""
        with self._changed:
            return [k for m in self.messages for k in ("READY", "RELOADING", "STOPPING") if k in m]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


async def run(url: str, wf_type: str, wf_id: str, payload: Any, timeout: float = 60.0, **connect: Any) -> Any:
    """Run a workflow to its result through the public Client."""
    from grctl.client.client import Client
    from grctl.nats.connection import Connection

    conn = await Connection.connect([url], **connect)
    try:
        return await Client(conn).run_workflow(wf_type, wf_id, payload, timeout=timeout)
    finally:
        await conn.close()


async def wait_file(path: Path, timeout: float = 20.0) -> str:
    for _ in range(int(timeout / 0.05)):
        if await asyncio.to_thread(path.exists):
            return await asyncio.to_thread(path.read_text)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def gone(pid: int, timeout: float = 15.0) -> bool:
    for _ in range(int(timeout / 0.05)):
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        await asyncio.sleep(0.05)
    return False
