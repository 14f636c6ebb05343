"""Child processes as the supervisor sees them: start with a spec on stdin, read READY/ERROR from the
status pipe, stop with SIGTERM then SIGKILL after a deadline, and groups of them (generations)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

import msgspec

from grctl import settings
from grctl.daemon.channel import (
    STATUS_FD_VARIABLE,
    ReadyInfo,
    Role,
    Spec,
    StatusKind,
    parse_error,
    parse_ready,
    parse_status,
)
from grctl.daemon.model import DaemonConfig
from grctl.daemon.notify import child_environment
from grctl.lifecycle import until_stopped
from grctl.ops import multiproc

log = logging.getLogger("grctl.daemon")



def stop_budget(shutdown_timeout: float) -> float:
    """The longest a graceful stop of grctld takes: the generations drain, then the embedded engine
    stops (each ``shutdown_timeout`` plus KILL_MARGIN), then the embedded nats-server."""
    return (2 * (shutdown_timeout + settings.KILL_MARGIN) + settings.NATS_SERVER_STOP_TIMEOUT
            + settings.STOP_SLACK)


class ChildFailed(Exception):
    """A child did not become ready: it said why, exited, or took too long. ``fatal``: trying again
    cannot help (the workflow modules do not import)."""

    def __init__(self, message: str, fatal: bool = False, entry: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.entry = entry  # the failing ``workflows`` entry, when the child said which


class ChildProcess:
    """One ``python -m grctl.daemon.process_main ROLE`` process."""

    def __init__(self, role: Role, cfg: DaemonConfig, generation: int = 0, index: int = 0,
                 replaces: list[str] | None = None) -> None:
        self.role = role
        self.cfg = cfg
        self.generation = generation
        self.index = index
        self.replaces = replaces  # on a reload, the types the running generation serves
        self.proc: asyncio.subprocess.Process | None = None
        self.ready_info: ReadyInfo | None = None
        self.error: str | None = None
        self.error_entry: int | None = None
        self.fatal = False
        self.stopping = False
        self.ready_at: float | None = None
        self.failures = 0  # consecutive failed starts of this slot (restart backoff)
        self.nats_up = True  # it said nothing of a lost NATS connection since it was ready
        self._ready = asyncio.Event()
        self._status_task: asyncio.Task[None] | None = None

    @property
    def label(self) -> str:
        if self.role is Role.WORKER:
            return f"worker {self.generation}.{self.index}" + (f" (pid {self.pid})" if self.pid else "")
        return f"{self.role}" + (f" (pid {self.pid})" if self.pid else "")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        read_fd, write_fd = os.pipe()
        env = multiproc.child_environment(child_environment(), counts=self.role is Role.WORKER)
        env[STATUS_FD_VARIABLE] = str(write_fd)
        try:
            # -P: the working directory is no import root (python_path is), as for grctld itself
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",
                "-m",
                "grctl.daemon.process_main",
                self.role,
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                env=env,
            )
        finally:
            os.close(write_fd)
        spec = Spec(config=msgspec.Raw(self.cfg.encode()), generation=self.generation, index=self.index,
                    replaces=self.replaces)
        line = msgspec.json.encode(spec) + b"\n"
        assert self.proc.stdin is not None
        self.proc.stdin.write(line)
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.drain()
        self._status_task = asyncio.create_task(self._read_status(read_fd))

    async def _read_status(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        try:
            while line := await reader.readline():
                kind, rest = parse_status(line.decode(errors="replace"))
                match kind:
                    case StatusKind.READY:
                        self.ready_info = parse_ready(rest)
                        self.ready_at = time.monotonic()
                        self._ready.set()
                    case StatusKind.NATS:
                        self.nats_up = rest == "up"
                    case StatusKind.ERROR | StatusKind.FATAL:
                        report = parse_error(rest)
                        self.error, self.error_entry = report.message, report.entry
                        self.fatal = kind is StatusKind.FATAL
                        self._ready.set()
        finally:
            transport.close()

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        multiproc.process_exited(self.proc.pid)
        return code

    def not_ready(self) -> str | None:
        """Why this child does not consume now (for /readyz), or None."""
        if not self.running:
            return f"{self.label} is not running"
        if self.ready_info is None or self.error is not None:
            return f"{self.label} is not ready"
        if not self.nats_up:
            return f"{self.label} lost its NATS connection (reconnecting)"
        return None

    async def wait_ready(self, timeout: float) -> ReadyInfo:
        """The READY info; ChildFailed when it reports an error, exits or ``timeout`` passes."""
        exited = asyncio.ensure_future(self.wait())
        await until_stopped(exited, self._ready, timeout=timeout)
        exited.cancel()
        if self.ready_info is not None and self.error is None:
            return self.ready_info
        if self.error:
            raise ChildFailed(self.error, self.fatal, self.error_entry)
        if self.proc is not None and self.proc.returncode is not None:
            # its last words may still be in the pipe
            if self._status_task is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._status_task), 1.0)
            raise ChildFailed(
                self.error or f"{self.label} exited with code {self.proc.returncode}", self.fatal,
                self.error_entry,
            )
        raise ChildFailed(f"{self.label} was not ready within {timeout:g}s")

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    async def stop(self, timeout: float) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout`` + a margin; returns the exit code."""
        self.stopping = True
        if self.proc is None:
            return None
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.wait(), timeout + settings.KILL_MARGIN)
            except TimeoutError:
                log.warning("%s did not stop within %gs: killing it", self.label,
                            timeout + settings.KILL_MARGIN)
                self.kill()
        code = await self.wait()
        await self.close()
        return code

    def kill(self) -> None:
        self.stopping = True
        self.signal(signal.SIGKILL)

    async def close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
        if self._status_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._status_task, 1.0)


class Generation:
    """The worker processes started from one configuration."""

    def __init__(self, number: int, cfg: DaemonConfig, replaces: list[str] | None = None) -> None:
        self.number = number
        self.cfg = cfg
        self.processes = [ChildProcess(Role.WORKER, cfg, number, i, replaces)
                          for i in range(cfg.worker.processes)]
        self.stopping = False

    def __repr__(self) -> str:
        return f"generation {self.number}"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid]

    async def start(self) -> None:
        for proc in self.processes:
            await proc.start()

    async def wait_ready(self) -> list[ReadyInfo]:
        return list(
            await asyncio.gather(*(p.wait_ready(self.cfg.worker.ready_timeout) for p in self.processes))
        )

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.gather(*(p.stop(self.cfg.shutdown_timeout) for p in self.processes))

    def kill(self) -> None:
        self.stopping = True
        for proc in self.processes:
            proc.kill()
