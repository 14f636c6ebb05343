"""Worker processes for tests: launch a real ``Worker`` in a child process, wait for it to be ready,
stop it gracefully or kill it (SIGKILL) like a crash. Always ended by pid."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


class ChildProcess:
    """A child process whose output is collected in the background (so it can never block)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None = None,
                 log_path: Path | None = None) -> None:
        self.args = args
        self.env = env
        self.cwd = cwd
        self.log_path = log_path  # where the output is also written, as it comes
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def start(self) -> ChildProcess:
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        log = open(self.log_path, "a") if self.log_path else None
        try:
            for line in self.proc.stdout:
                if log is not None:
                    log.write(line)
                    log.flush()
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        finally:
            if log is not None:
                log.close()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, prefix: str, timeout: float = 15.0, anywhere: bool = False) -> str:
        """The first output line starting with ``prefix`` (containing it, with ``anywhere``)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if line.startswith(prefix) or (anywhere and prefix in line):
                        return line
                if self.proc is not None and self.proc.poll() is not None and not self._reading():
                    raise RuntimeError(f"process exited ({self.proc.returncode}) before {prefix!r}:\n"
                                       f"{self.output}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {prefix!r} within {timeout}s:\n{self.output}")
                self._changed.wait(min(left, 0.2))

    async def line(self, prefix: str, timeout: float = 15.0) -> str:
        """``wait_for_line`` without blocking the event loop (an in-process engine must keep running)."""
        return await asyncio.to_thread(self.wait_for_line, prefix, timeout)

    def _reading(self) -> bool:
        return bool(self.proc and self.proc.stdout and not self.proc.stdout.closed and
                    self.proc.poll() is None)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


class WorkerProcess(ChildProcess):
    """``python -m support.run_worker MODULE`` with the given environment."""

    def __init__(self, module: str, env: dict[str, str], *extra_args: str) -> None:
        super().__init__([sys.executable, "-m", "support.run_worker", module, *extra_args], env, cwd=TESTS)
        self.worker_id = ""

    def wait_ready(self, timeout: float = 20.0) -> WorkerProcess:
        """Block until the worker printed READY (only with an engine in another process)."""
        self.worker_id = self.wait_for_line("READY ", timeout).split(" ", 1)[1]
        return self

    async def ready(self, timeout: float = 20.0) -> WorkerProcess:
        self.worker_id = (await self.line("READY ", timeout)).split(" ", 1)[1]
        return self


def worker_env(base: dict[str, str], **extra: str | float | int) -> dict[str, str]:
    env = dict(base)
    env.update({k: str(v) for k, v in extra.items()})
    return env
