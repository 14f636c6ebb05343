"""Two hosts, two code versions, one workflow type: a worker process whose code renamed the event handler
and one whose code still has it share the type's tasks. A task that reaches the worker without the
handler is handed back, never failed, and the other worker runs it: every run completes, each
handler once. Real worker processes, real engine and nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.processes import WorkerProcess, worker_env
from support.sdk import kinds, step_kinds, wait_for

from grctl.client.client import Client
from grctl.nats.connection import Connection

# A held task comes back after 0.25 s, doubling up to 30 s, to whichever worker pulls first: a run that
# keeps reaching the code without the handler (one chance in two each time) waits longer each time.
# Fourteen misses in a row (one chance in 16,000 per run) are needed to pass the result deadline.
RESULT_DEADLINE = 240.0  # s
pytestmark = pytest.mark.timeout(RESULT_DEADLINE + 60)

CODE = """
import os
from pathlib import Path

from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow

order = Workflow("Order")
RAN = Path(os.environ["GRCTL_TEST_DIR"])


@order.start()
async def start(ctx: Context) -> Directive:
    return ctx.next.wait(timeout=3600)


@order.event(name="{event}")
async def approve(ctx: Context) -> Directive:
    with open(RAN / f"approve.{{os.getpid()}}", "a") as f:
        f.write(ctx.run.wf_id + "\\n")
    return ctx.next.complete(os.getpid())
"""


async def test_a_worker_without_the_handler_hands_tasks_to_one_that_has_it(
        engine: Any, connection: Connection, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    for version, event in (("old", "approve"), ("new", "approved")):
        (tmp_path / f"order_{version}.py").write_text(CODE.format(event=event))
    env = worker_env(subprocess_env, GRCTL_TEST_DIR=tmp_path)
    old = WorkerProcess(str(tmp_path / "order_old.py"), env).start()
    new = WorkerProcess(str(tmp_path / "order_new.py"), env).start()
    client = Client(connection)
    ids = [f"two-{n}" for n in range(8)]
    try:
        await old.ready()
        await new.ready()
        for wf_id in ids:
            await client.start_workflow("Order", wf_id)

        async def all_waiting() -> bool:
            return all(["wait.started" in kinds(await client.get_history(i)) for i in ids])

        await wait_for(all_waiting, timeout=30)
        for wf_id in ids:
            await (await client.get_workflow_handle(wf_id)).send("approve")
        try:
            results = await asyncio.gather(*(_result(client, wf_id) for wf_id in ids))
        except TimeoutError:
            pytest.fail(f"not every run completed\nold worker:\n{old.output[-4000:]}\n"
                        f"new worker:\n{new.output[-4000:]}")
        assert set(results) == {old.pid}  # only the code with the handler ran it
        ran = (tmp_path / f"approve.{old.pid}").read_text().split()
        assert sorted(ran) == sorted(ids)  # each once
        for wf_id in ids:
            history = await client.get_history(wf_id)
            assert "step.failed" not in kinds(history) and step_kinds(history).count(
                ("step.started", "approve")) == 1
            assert (await client.describe(wf_id)).stuck is None
        assert "is held, not failed" in new.output  # the new code did receive some of them
    finally:
        old.stop()
        new.stop()


async def _result(client: Client, wf_id: str) -> Any:
    handle = await client.get_workflow_handle(wf_id)
    try:
        return await handle.result(timeout=RESULT_DEADLINE)
    finally:
        await handle.close()
