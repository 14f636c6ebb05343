"""``grctl describe``, ``grctl list --stuck`` and ``grctl retry`` as an operator runs them (the real
command, a real engine, nats-server and worker): why a run failed, where a stuck run is held, and
resuming failed runs one by one or by filter."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from support.cli_run import grctl
from support.sdk import wait_for, workers

from grctl.client.client import Client
from grctl.models.common import RunStatus
from grctl.models.directive import Directive
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(120)


def shop(fixed: bool) -> Workflow:
    wf = Workflow("Shop")

    @wf.start()
    async def start(ctx: Context, item: str) -> Directive:
        if item == "held":
            return ctx.next.step("gone")  # a step this code does not have
        return ctx.next.step(pack)

    @wf.step()
    async def pack(ctx: Context) -> Directive:
        if not fixed:
            raise KeyError("no box for this item")
        return ctx.next.complete({"packed": True})

    return wf


async def status_is(client: Client, wf_id: str, status: RunStatus) -> bool:
    return (await client.describe(wf_id)).status == status


async def test_describe_list_stuck_and_retry_from_the_command_line(
        engine: Any, connection: Connection, nats_url: str, subprocess_env: dict[str, str]) -> None:
    client = Client(connection)
    env = subprocess_env
    async with workers(nats_url) as start_worker:
        buggy = await start_worker(shop(fixed=False))
        for wf_id in ("cli-a", "cli-b", "cli-held"):
            await client.start_workflow("Shop", wf_id, {"item": "held" if wf_id == "cli-held" else "x"})
        for wf_id in ("cli-a", "cli-b"):
            await wait_for(lambda wf_id=wf_id: status_is(client, wf_id, RunStatus.failed), timeout=20)
        await wait_for(lambda: _stuck(client, "cli-held"), timeout=20)

        failed = await grctl(env, "describe", "cli-a")
        assert failed.rc == 0, failed
        assert "Failed in:       pack" in failed.out and "Error:           KeyError: 'no box" in failed.out
        assert "Traceback" not in failed.out
        verbose = await grctl(env, "describe", "cli-a", "-v")
        assert "Traceback:" in verbose.out and "raise KeyError" in verbose.out, verbose
        as_json = json.loads((await grctl(env, "describe", "cli-a", "--json")).out)
        assert as_json["step"] == "pack" and as_json["error"]["type"] == "KeyError"

        held = await grctl(env, "describe", "cli-held")
        assert "At step:         gone" in held.out and "Stuck:" in held.out, held
        assert "missing_handler 'gone'" in held.out and buggy.worker_id in held.out
        held_json = json.loads((await grctl(env, "describe", "cli-held", "--json")).out)
        assert held_json["stuck"]["handler"] == "gone"
        listed = await grctl(env, "list", "--stuck")
        assert "cli-held" in listed.out and "running, stuck" in listed.out and "cli-a" not in listed.out

        refused = await grctl(env, "retry", "cli-held")
        assert refused.rc == 6 and "running" in refused.err, refused

        await buggy.stop(shutdown_timeout=1)
        await start_worker(shop(fixed=True))
        one = await grctl(env, "retry", "cli-a")
        assert one.rc == 0 and "Retried workflow cli-a" in one.out, one
        old_run, new_run = re.search(r"run (\S+) resumes as run (\S+)", one.out).groups()  # type: ignore[union-attr]
        old_history = await grctl(env, "history", "cli-a", "--run-id", old_run)
        assert f"(retried as run {new_run}" in old_history.out, old_history  # the links, both ways
        new_history = await grctl(env, "history", "cli-a")
        assert f"retry of run {old_run} at pack" in new_history.out, new_history
        dry = await grctl(env, "retry", "--status", "failed", "--type", "Shop", "--dry-run")
        assert "would retry cli-b" in dry.out and "cli-a" not in dry.out, dry
        bulk = await grctl(env, "retry", "--status", "failed", "--type", "Shop")
        assert bulk.rc == 0 and "retried cli-b" in bulk.out and "1 runs retried, 0 refused" in bulk.out, bulk
        for wf_id in ("cli-a", "cli-b"):
            await wait_for(lambda wf_id=wf_id: status_is(client, wf_id, RunStatus.completed), timeout=20)
        done = await grctl(env, "describe", "cli-b")
        assert 'Result:          {"packed": true}' in done.out and "Retry of:" in done.out, done
        usage = await grctl(env, "retry")
        assert usage.rc == 2 and "at least one filter" in usage.err


async def _stuck(client: Client, wf_id: str) -> bool:
    return (await client.describe(wf_id)).stuck is not None
