"""A real grctld subprocess (``python -m grctl.daemon -c CONFIG``) whose output is collected line by line:
used by the daemon tests (tests/daemon/daemonkit.py) and by the soak, which kills one like any component.

It runs in its own session so that its starter can end it and its children together, by the group id
of the process it started (never by name).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.processes import ChildProcess


class Daemon(ChildProcess):
    """``python -m grctl.daemon -c CONFIG`` with its output collected line by line (and in grctld.out)."""

    def __init__(
        self,
        config: Path,
        env: dict[str, str],
        args: list[str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.config = config
        command = command or [sys.executable, "-m", "grctl.daemon"]
        super().__init__([*command, "-c", str(config), *(args or [])], env, cwd=config.parent,
                         log_path=config.parent / "grctld.out")

    def mark(self) -> int:
        with self._changed:
            return len(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30.0, after: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    found = regex.search(line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                exited = self.proc is not None and self.proc.poll() is not None
                if left <= 0 or (exited and not self._changed.wait(0.2)):
                    raise AssertionError(
                        f"no line matching {pattern!r} (exited: {exited}); output:\n"
                        + "\n".join(self.lines[-60:])
                    )
                self._changed.wait(min(left, 0.2))

    def ready_pids(self, generation: int, after: int = 0, timeout: float = 30.0) -> list[int]:
        found = self.wait_for(rf"generation {generation} ready: .* pids ([0-9, ]+);", timeout, after)
        return [int(p) for p in found.group(1).split(",")]

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """End the daemon (SIGTERM, then SIGKILL to its process group) — used in test cleanup."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group its starter created: stray children too
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        return self.proc.returncode
