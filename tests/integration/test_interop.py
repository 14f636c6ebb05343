"""Interop with the public SDK (grctl-sdk-python 0.3.0 from PyPI, in its own Python 3.13 environment):
its worker runs a workflow against our engine, its client runs a workflow on our worker, and its client
finds the latest run of a workflow id that was retried."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import public_sdk
from support.sdk import workers
from ulid import ULID

from grctl.client.client import Client
from grctl.models import Directive
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.workflow import Workflow

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests" / "interop"

pytestmark = pytest.mark.interop


@pytest.fixture(scope="session")
def public_sdk_python() -> str:
    """The interpreter of a virtual environment holding the public SDK (made once, cached in .cache/)."""
    python = public_sdk.public_sdk_python()
    if python is None:
        reason = "no Python >= 3.13 on this machine: the public SDK needs it"
        print(f"SKIP interop: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return python


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_public_worker_runs_on_our_engine(public_sdk_python: str, engine, nats_url: str,
                                                tmp_path: Path) -> None:
    log = open(tmp_path / "public-worker.log", "wb")
    proc = subprocess.Popen([public_sdk_python, str(INTEROP / "public_worker.py")], cwd=tmp_path,
                            env=public_sdk.public_env(nats_url), stdout=log, stderr=subprocess.STDOUT)
    try:
        conn = await Connection.connect([nats_url])
        client = Client(conn)
        wf_id = f"interop-{ULID()}"
        deadline = time.monotonic() + 30
        while True:  # the public worker registers its type shortly after it starts
            try:
                result = await client.run_workflow("PublicInterop", wf_id, {"value": "hi"}, timeout=None)
                break
            except Exception as exc:
                if "not registered" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        assert result == {"loud": "HI", "run": wf_id}
        kinds = [str(e.kind) for e in await client.get_history(wf_id)]
        assert kinds[0] == "run.started" and kinds[-1] == "run.completed"
        assert kinds.count("step.completed") == 2
        assert "task.completed" in kinds
        await conn.close()
    finally:
        _stop(proc)
        log.close()


async def test_public_client_runs_on_our_worker(public_sdk_python: str, engine, nats_url: str,
                                                subprocess_env: dict[str, str], tmp_path: Path) -> None:
    worker = subprocess.Popen([sys.executable, str(INTEROP / "our_worker.py")], env=subprocess_env,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "w.log", "wb"))
    try:
        wf_id = f"interop-{ULID()}"
        deadline = time.monotonic() + 30
        while True:
            # An asyncio subprocess: the in-process engine shares this event loop.
            proc = await asyncio.create_subprocess_exec(
                public_sdk_python, str(INTEROP / "public_client.py"), "OurInterop", wf_id, '{"n": 21}',
                cwd=tmp_path, env=public_sdk.public_env(nats_url), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
            assert proc.returncode == 0, stderr.decode()
            seen = json.loads(stdout.decode().strip().splitlines()[-1])
            if "not registered" in seen.get("error", "") and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                wf_id = f"interop-{ULID()}"
                continue
            break
        assert seen.get("error") is None, seen
        assert seen["result"] == {"doubled": 42, "wf_id": wf_id}
        assert seen["status"] == "completed"
        assert seen["kinds"][0] == "run.started" and seen["kinds"][-1] == "run.completed"
    finally:
        _stop(worker)


async def test_the_public_client_finds_a_retried_workflows_latest_run(
        public_sdk_python: str, engine, nats_url: str, tmp_path: Path) -> None:
    """A retry is a new run of the same workflow id: the public client's describe, history and handle
    find it (it reads the latest-run pointer the retry moved), not the failed run."""
    flaky = Workflow("Flaky")
    fixed = tmp_path / "fixed"

    @flaky.start()
    async def start(ctx: Context) -> Directive:
        if not fixed.exists():
            raise RuntimeError("not yet")
        return ctx.next.complete("fine")

    conn = await Connection.connect([nats_url])
    client = Client(conn)
    try:
        async with workers(nats_url) as start_worker:
            await start_worker(flaky)
            wf_id = f"interop-retry-{ULID()}"
            failed = await client.start_workflow("Flaky", wf_id)
            with pytest.raises(Exception, match="not yet"):
                await failed.result(timeout=30)
            fixed.touch()
            retried = await client.retry_run(wf_id)
            assert await (await client.get_workflow_handle(wf_id)).result(timeout=30) == "fine"
        proc = await asyncio.create_subprocess_exec(
            public_sdk_python, str(INTEROP / "public_describe.py"), wf_id, cwd=tmp_path,
            env=public_sdk.public_env(nats_url), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, stderr.decode()
        seen = json.loads(stdout.decode().strip().splitlines()[-1])
        assert seen.get("error") is None, seen
        assert seen["run_id"] == retried.id != failed.run_id and seen["status"] == "completed", seen
        assert seen["kinds"][0] == "run.started" and seen["kinds"][-1] == "run.completed", seen
        assert seen["result"] == "fine", seen
    finally:
        await conn.close()
