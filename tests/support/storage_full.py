"""The stream's storage made to run out, then room given back, with a real nats-server: its store on a
small tmpfs (JetStream limits itself to 75 % of it; mounting needs root, which CI has), filler messages
on a stream subject until JetStream refuses one, and the filler purged ("room returns"). Also what an
operator sees meanwhile: the engine's ``/readyz`` and its storage metrics. Used by
tests/integration/test_storage_full.py (small) and the disk-full scenario of tests/bench/bench_chaos.py
(large, through support/faults.py)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from grctl.nats.connection import Connection
from grctl.nats.jetstream import publish, purge, storage_full
from support.scrape import aget, value, wait_status

FILLER = "grctl_wf_kv.filler.run.part"  # a stream subject nothing else writes
CHUNK = b"f" * 1_000_000  # under the server's 1 MiB max_payload
AT_ONCE = 2.0  # seconds: a refusal slower than this is a timeout, not an answer


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MB mounted on ``path`` (made if missing), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def fill(conn: Connection, limit: int = 1000, parallel: int = 4, down_to: int = len(CHUNK)) -> int:
    """Write filler messages, ``parallel`` at a time (the store fills in a moment, while a load still
    runs), until JetStream refuses one for lack of storage, then smaller ones, a tenth each time, down to
    ``down_to`` bytes: a store that refuses a large write may still take small ones (a start, a step's
    commit). The bytes accepted (at most ``limit`` MB)."""
    accepted = 0
    size = len(CHUNK)
    while size >= down_to:
        while True:
            if accepted >= limit * len(CHUNK):
                raise AssertionError(f"the store never filled up ({limit} MB written)")
            writes = [publish(conn.nc, FILLER, CHUNK[:size]) for _ in range(parallel)]
            outcomes = await asyncio.gather(*writes, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not storage_full(outcome):
                    raise outcome
            accepted += size * sum(not isinstance(outcome, BaseException) for outcome in outcomes)
            if any(isinstance(outcome, BaseException) for outcome in outcomes):
                break
        size //= 10
    return accepted


async def make_room(conn: Connection, keep: int | None = None) -> int:
    """Purge the filler (all but the last ``keep`` messages): room returns, nothing is restarted. How
    many messages went."""
    return await purge(conn.nc, FILLER, keep=keep)


@dataclass(frozen=True)
class FullSigns:
    """What the engine's listener shows while the store is full."""

    readyz: int
    reason: str
    gauge: float  # grctl_engine_storage_full
    refusals: float  # grctl_engine_storage_refusals_total

    def defects(self) -> list[str]:
        found = []
        if self.readyz != 503 or "storage is full" not in self.reason:
            found.append(f"/readyz answered {self.readyz} ({self.reason.strip()!r}) while the store was full")
        if self.gauge != 1:
            found.append(f"grctl_engine_storage_full was {self.gauge:g} while the store was full")
        if self.refusals < 1:
            found.append("grctl_engine_storage_refusals_total counted no refusal")
        return found


async def full_signs(ops: str, timeout: float = 10.0) -> FullSigns:
    """``/readyz`` and the storage metrics at ``ops`` (the engine's HTTP base URL), once ``/readyz``
    answers 503 (or ``timeout`` seconds have passed)."""
    try:
        reason = await wait_status(f"{ops}/readyz", 503, timeout=timeout)
        status = 503
    except AssertionError as exc:  # not 503 in time: what it answered is in the message
        status, reason = 0, str(exc)
    _, metrics = await aget(f"{ops}/metrics")
    return FullSigns(status, reason, value(metrics, "grctl_engine_storage_full"),
                     value(metrics, "grctl_engine_storage_refusals_total"))
