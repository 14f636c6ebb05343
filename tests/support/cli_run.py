"""Running ``python -m grctl ...`` as a user does, from tests: the exit status, stdout and stderr."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Done:
    rc: int
    out: str
    err: str

    def __repr__(self) -> str:
        return f"exit {self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


async def spawn(env: dict[str, str], *args: str, stdin: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "grctl", *args, env=env, cwd=ROOT,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def finish(proc: asyncio.subprocess.Process, stdin: bytes | None = None, timeout: float = 20.0) -> Done:
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def grctl(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 20.0) -> Done:
    """Run ``python -m grctl ARGS`` (``stdin``: text to feed it) and collect its exit status and output."""
    proc = await spawn(env, *args, stdin=stdin is not None)
    return await finish(proc, stdin.encode() if stdin is not None else None, timeout)
