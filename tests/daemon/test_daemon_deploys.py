"""Safe deploys on a real grctld: runs wait for the event ``approve``; a reload whose code renames that
handler is refused (log and systemd STATUS name the handler and the runs) and the running generation
keeps serving; with ``reload.allow_missing_handlers`` it goes through and a run that receives the
event is stuck, not failed; a fix-forward reload continues it; a bug in a step fails a run, which
completes after a fixed reload and ``grctl retry``. ``--check-config`` reports the same refusal.
Real files, real SIGHUP, a real engine process and nats-server."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemonkit import Daemon, NotifySocket, config_text, daemon_env, write_atomic
from support.cli_run import grctl
from support.scrape import aget, value
from support.sdk import wait_for

from grctl.client.client import Client
from grctl.models.common import RunStatus
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(240)

ORDER = """
from grctl.models import Directive
from grctl.worker.context import Context
from grctl.workflow import Workflow

order = Workflow(workflow_type="Order")


@order.start()
async def start(ctx: Context) -> Directive:
    return ctx.next.wait(timeout=3600)


@order.event(name="{event}")
async def approve(ctx: Context) -> Directive:
    return ctx.next.step(ship)


@order.step()
async def ship(ctx: Context) -> Directive:
    if {bug}:
        raise RuntimeError("the shipping bug")
    return ctx.next.complete("shipped")
"""


def write_order(tmp_path: Path, event: str = "approve", bug: bool = False) -> None:
    (tmp_path / "flows").mkdir(exist_ok=True)
    write_atomic(tmp_path / "flows" / "orders.py", ORDER.format(event=event, bug=bug))


def write_config(path: Path, nats_url: str, allow: bool = False) -> None:
    extra = "reload: {watch_config: false, allow_missing_handlers: true}\n" if allow else \
        "reload: {watch_config: false}\n"
    write_atomic(path, config_text([nats_url], workflows="[orders]", extra=extra))


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


async def status(client: Client, wf_id: str) -> RunStatus:
    return (await client.describe(wf_id)).status


async def reload(d: Daemon, generation: int) -> None:
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.ready_pids(generation, after=mark, timeout=60)


async def test_a_rename_is_refused_or_leaves_runs_stuck_and_fixes_resume_them(
        tmp_path: Path, nats_url: str, engine_http: str, subprocess_env: dict[str, str],
        notify: NotifySocket, connection: Connection) -> None:
    client = Client(connection)
    write_order(tmp_path)
    config = tmp_path / "grctl.yaml"
    write_config(config, nats_url)
    env = daemon_env(subprocess_env, tmp_path, NOTIFY_SOCKET=str(notify.path))
    d = Daemon(config, env).start()
    try:
        d.ready_pids(1, timeout=60)
        for n in (1, 2, 3):
            await client.start_workflow("Order", f"o{n}")
        for n in (1, 2, 3):
            await wait_for(lambda n=n: _waiting(client, f"o{n}"), timeout=20)

        # The rename, refused: generation 1 keeps serving.
        write_order(tmp_path, event="approved")
        seen, mark = len(notify.messages), d.mark()
        d.signal(signal.SIGHUP)
        refused = d.wait_for(r"reload refused: the new code lacks (.*)", after=mark, timeout=60).group(1)
        assert "event handler 'approve' of 'Order'" in refused and "3 live run(s)" in refused
        assert all(f"o{n}/" in refused for n in (1, 2, 3))
        at = notify.wait_for("STATUS", after=seen, prefix="reload failed: ")
        assert "event handler 'approve'" in notify.messages[at]["STATUS"]
        assert notify.messages[at]["STATUS"].endswith("generation 1 keeps running")
        checked = subprocess.run([sys.executable, "-m", "grctl.daemon", "-c", str(config), "--check-config"],
                                 env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0 and "a reload to this code would be refused" in checked.stderr, checked
        assert "event handler 'approve'" in checked.stderr

        # A file that drops every workflow type (no new worker to ask): refused all the same.
        write_atomic(config, config_text([nats_url], workflows="[]", engine=True,
                                         extra="reload: {watch_config: false}\n"))
        seen, mark = len(notify.messages), d.mark()
        d.signal(signal.SIGHUP)
        refused = d.wait_for(r"reload refused: the new code lacks (.*)", after=mark, timeout=60).group(1)
        assert "workflow type 'Order', needed by 3 live run(s)" in refused, refused
        at = notify.wait_for("STATUS", after=seen, prefix="reload failed: ")
        assert notify.messages[at]["STATUS"].endswith("generation 1 keeps running")
        write_order(tmp_path)  # the rename undone too: the next reload serves what generation 1 did
        write_config(config, nats_url)
        await reload(d, 3)  # generation 2 was the refused rename
        write_order(tmp_path, event="approved")

        await (await client.get_workflow_handle("o3")).send("approve")
        assert await (await client.get_workflow_handle("o3")).result(timeout=30) == "shipped"

        # Allowed by the configuration: it goes through, and the event leaves o1 stuck, not failed.
        write_config(config, nats_url, allow=True)
        await reload(d, 4)
        await (await client.get_workflow_handle("o1")).send("approve")
        await wait_for(lambda: _stuck(client, "o1"), timeout=30)
        info = await client.describe("o1")
        assert info.status == RunStatus.running and info.stuck is not None
        assert (info.stuck.reason, info.stuck.handler) == ("missing_handler", "approve")
        listed = await grctl(subprocess_env, "list", "--stuck")
        assert "o1" in listed.out and "o2" not in listed.out, listed

        async def stuck_metrics() -> bool:
            exposed = (await aget(f"http://{engine_http}/metrics"))[1]
            return value(exposed, "grctl_engine_stuck_runs", wf_type="Order") == 1 and value(
                exposed, "grctl_engine_runs_stuck_total", wf_type="Order", reason="missing_handler") == 1

        await wait_for(stuck_metrics, timeout=30)  # the gauge follows the run index

        # A fix-forward deploy (with a bug in ship): o1 continues, then fails in ship.
        write_order(tmp_path, event="approve", bug=True)
        await reload(d, 5)
        await wait_for(lambda: _is(client, "o1", RunStatus.failed), timeout=60)
        described = await grctl(subprocess_env, "describe", "o1")
        assert "Failed in:       ship" in described.out and "the shipping bug" in described.out, described

        # The fix, then grctl retry: o1 completes; o2 (waiting all along) completes too.
        write_order(tmp_path, event="approve", bug=False)
        await reload(d, 6)
        retried = await grctl(subprocess_env, "retry", "o1")
        assert retried.rc == 0, retried
        assert await (await client.get_workflow_handle("o1")).result(timeout=30) == "shipped"
        await (await client.get_workflow_handle("o2")).send("approve")
        assert await (await client.get_workflow_handle("o2")).result(timeout=30) == "shipped"
        failed = await client.list_runs(status="failed", type="Order")
        assert [r.wf_id for r in failed] == ["o1"] and failed[0].retried_as  # the one bug, retried

        async def none_stuck() -> bool:  # o1 moved on
            exposed = (await aget(f"http://{engine_http}/metrics"))[1]
            return value(exposed, "grctl_engine_stuck_runs", wf_type="Order") == 0

        await wait_for(none_stuck, timeout=30)
    finally:
        d.stop()


async def _waiting(client: Client, wf_id: str) -> bool:
    return "wait.started" in [str(e.kind) for e in await client.get_history(wf_id)]


async def _stuck(client: Client, wf_id: str) -> bool:
    return (await client.describe(wf_id)).stuck is not None


async def _is(client: Client, wf_id: str, wanted: RunStatus) -> bool:
    return await status(client, wf_id) == wanted
