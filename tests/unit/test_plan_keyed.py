"""The per-run ordering the engine relies on: jobs of one key run one at a time in submission order,
different keys run concurrently."""

from __future__ import annotations

import asyncio

from grctl.engine.keyed import KeyedSerializer


async def test_one_key_runs_in_order_and_keys_run_concurrently() -> None:
    serial = KeyedSerializer()
    log: list[str] = []
    gate = asyncio.Event()

    async def job(name: str, wait: bool = False) -> str:
        log.append(f"start {name}")
        if wait:
            await gate.wait()
        await asyncio.sleep(0)
        log.append(f"end {name}")
        return name

    first = asyncio.create_task(serial.run("a", lambda: job("a1", wait=True)))
    second = asyncio.create_task(serial.run("a", lambda: job("a2")))
    other = asyncio.create_task(serial.run("b", lambda: job("b1")))
    assert await other == "b1"
    assert "start a2" not in log, "a2 waits for a1"
    gate.set()
    assert await asyncio.gather(first, second) == ["a1", "a2"]
    assert log.index("end a1") < log.index("start a2")
    assert len(serial) == 0, "idle keys are forgotten"


async def test_a_failing_job_releases_its_successor() -> None:
    serial = KeyedSerializer()

    async def boom() -> None:
        raise RuntimeError("x")

    async def fine() -> str:
        return "ok"

    failing = asyncio.create_task(serial.run("k", boom))
    after = asyncio.create_task(serial.run("k", fine))
    results = await asyncio.gather(failing, after, return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1] == "ok"
