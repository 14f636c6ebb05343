"""The grctld command line as a real subprocess, and the parts it is made of (notify, logging, watch)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemonkit import ROOT, write_atomic

from grctl.daemon.logs import JsonFormatter, TextFormatter, _Redactor, configure_logging
from grctl.daemon.model import LoggingConfig
from grctl.daemon.notify import Notifier, child_environment
from grctl.daemon.watch import watch_paths


def grctld(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GRCTL_", "grctl_", "ENGINE_NATS"))}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "grctl.daemon", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def test_version_and_help() -> None:
    out = grctld("--version")
    assert out.returncode == 0 and out.stdout.startswith("grctld ")
    helped = grctld("--help")
    assert helped.returncode == 0
    for flag in ("--check-config", "--print-config", "--log-level", "/etc/grctl/grctl.yaml"):
        assert flag in helped.stdout


def test_check_config_on_the_example() -> None:
    out = grctld("-c", str(ROOT / "grctl.yaml.example"), "--check-config")
    assert out.returncode == 0, out.stderr
    assert "OK (1 workflow type(s): Greeting)" in out.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "workflows: [grctl.demo]\nnats:\n  servers: ['nats//x']\n",
            r"grctl.yaml:3:13: nats.servers[0]: 'nats//x' is not a valid NATS URL",
        ),
        (
            "workflows: [grctl.demo]\nlogging:\n  levle: debug\n",
            "grctl.yaml:3:3: logging: unknown key 'levle' (did you mean 'level'?)",
        ),
        (
            "workflows: [grctl.demo]\nworkflows: [grctl.demo]\n",
            "grctl.yaml:2:1: duplicate key 'workflows' (first defined at line 1, column 1)",
        ),
        (
            "workflows: [no_such.module]\n",
            "grctl.yaml:1:13: workflows[0]: cannot import 'no_such.module': no module named 'no_such'",
        ),
    ],
)
def test_check_config_errors_in_a_subprocess(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "grctl.yaml").write_text(text)
    out = grctld("-c", "grctl.yaml", "--check-config", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert out.stderr.strip().startswith(expected), out.stderr
    run = grctld("-c", "grctl.yaml", cwd=tmp_path)  # running refuses the same file, with the same words
    assert run.returncode == 1
    assert expected in run.stderr, run.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    out = grctld("-c", str(tmp_path / "absent.yaml"), "--check-config")
    assert out.returncode == 1
    assert out.stderr.strip() == f"{tmp_path / 'absent.yaml'}: no such file"


def test_print_config_applies_environment_and_flags(tmp_path: Path) -> None:
    (tmp_path / "grctl.yaml").write_text(
        "workflows: [grctl.demo]\nnats: {user: u, password: hunter2hunter2}\n"
    )
    out = grctld(
        "-c",
        "grctl.yaml",
        "--print-config",
        "--log-level",
        "DEBUG",
        "--nats-server",
        "nats://f:1",
        env={"GRCTL_NATS_SERVERS": "nats://e:1", "GRCTL_WORKER_PROCESSES": "3"},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "hunter2hunter2" not in out.stdout
    assert "nats://f:1" in out.stdout and "nats://e:1" not in out.stdout
    assert "level: debug" in out.stdout and "processes: 3" in out.stdout


# --- parts -----------------------------------------------------------------------------------------


@pytest.fixture
def datagram(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "n.sock"))
    sock.settimeout(2)
    yield sock
    sock.close()


def test_notifier_sends_datagrams_and_is_silent_without_socket(
    tmp_path: Path, datagram: socket.socket
) -> None:
    assert Notifier({}).ready("x") is False  # no NOTIFY_SOCKET: nothing, no error
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "3000000"})
    assert n.watchdog_interval == 1.5
    n.ready("all\ngood")
    assert datagram.recv(4096).decode() == "READY=1\nSTATUS=all good"
    n.reloading()
    fields = datagram.recv(4096).decode().splitlines()
    assert fields[0] == "RELOADING=1" and fields[1].startswith("MONOTONIC_USEC=")
    n.stopping()
    assert datagram.recv(4096) == b"STOPPING=1"
    assert Notifier({"WATCHDOG_USEC": "100", "WATCHDOG_PID": "1"}).watchdog_interval is None  # not ours
    env = child_environment({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "PATH": "/bin"})
    assert env == {"PATH": "/bin"}
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    assert gone.ready() is False  # a missing socket is logged, never raised


def test_abstract_notify_socket() -> None:
    name = f"grctl-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_logs_mask_secrets_in_text_and_json() -> None:
    redact = _Redactor(['pa"ss', "tok3n"])
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "login with %s and %s", ('pa"ss', "tok3n"), None
    )
    record.role, record.generation, record.gen = "worker", 2, " gen=2"
    text = TextFormatter(redact).format(record)
    assert 'pa"ss' not in text and "tok3n" not in text and "worker[" in text
    line = JsonFormatter(redact).format(record)
    entry = json.loads(line)
    assert entry["message"] == "login with ******** and ********" and entry["generation"] == 2


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back for the tests that follow."""
    names = ["", "nats", "watchfiles", "grctl.workflow"]
    levels = {name: logging.getLogger(name).level for name in names}
    handlers = list(logging.getLogger().handlers)
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_configure_logging_to_a_file_in_json(tmp_path: Path, restore_logging: None) -> None:
    target = tmp_path / "grctld.log"
    configure_logging(LoggingConfig(level="debug", format="json", destination=str(target)), ["s3cr3t"])
    logging.getLogger("grctl.daemon").info("connected with s3cr3t")
    logging.getLogger("grctl.workflow").debug("workflow says hi")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert lines[0]["message"] == "connected with ********" and lines[0]["role"] == "supervisor"
    assert lines[1]["logger"] == "grctl.workflow"


async def test_directory_watch_sees_a_rename_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "grctl.yaml"
    config.write_text("a: 1\n")
    seen: list[set[str]] = []
    stop = asyncio.Event()
    task = asyncio.create_task(watch_paths([str(tmp_path)], seen.append, stop, recursive=False))
    await asyncio.sleep(0.3)
    write_atomic(config, "a: 2\n")
    for _ in range(100):
        if any(str(config) in batch for batch in seen):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)  # stoppable: the loop wakes up on its timeout
    assert any(str(config) in batch for batch in seen), seen
