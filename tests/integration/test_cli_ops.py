"""The on-call commands of ``grctl`` against a real engine process and worker process: ``list`` (table,
``--json``, filters), ``--version``, ``start`` without an id, ``cancel``/``terminate --wait``,
``history --follow`` on a missing run, the public CLI's ``grctl workflow ...`` shape and ``host:port``
servers; and ``grctl engine --http --log-format json`` (its metrics and health endpoints)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.cli_run import ROOT, grctl, spawn
from support.cli_run import finish as finish_proc
from support.processes import ChildProcess, WorkerProcess, worker_env
from support.scrape import aget, value, wait_status, wait_value
from support.sdk import wait_history

from grctl.cli.commands import EXIT_NOT_FOUND, EXIT_OK, EXIT_RUN_CANCELLED, EXIT_USAGE
from grctl.client.client import Client
from grctl.nats.connection import Connection
from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def cli(engine_process: subprocess.Popen, subprocess_env: dict[str, str],
              tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    worker = WorkerProcess("support.wf_cli", worker_env(subprocess_env, GRCTL_TEST_DIR=tmp_path)).start()
    try:
        await worker.ready()
        yield subprocess_env
    finally:
        worker.kill()


@pytest.fixture
def client(connection: Connection) -> Client:
    return Client(connection)


async def test_list_table_json_and_filters(cli: dict[str, str], client: Client) -> None:
    for i in range(3):
        assert (await grctl(cli, "run", "CliFlow", "--id", f"ok-{i}")).rc == EXIT_OK
    for i in range(2):
        assert (await grctl(cli, "run", "CliFlow", "--id", f"bad-{i}", "--input", '{"mode": "fail"}')).rc == 1

    async def indexed() -> list[dict]:
        for _ in range(100):
            done = await grctl(cli, "list", "--json")
            assert done.rc == EXIT_OK, done
            runs = json.loads(done.out)
            if len(runs) == 5 and all(r["status"] in ("completed", "failed") for r in runs):
                return runs
            await asyncio.sleep(0.1)
        raise AssertionError(f"the list did not show the 5 runs ended: {done.out}")

    runs = await indexed()
    assert [r["wf_id"] for r in runs] == ["bad-1", "bad-0", "ok-2", "ok-1", "ok-0"]
    assert runs[0]["id"] == (await client.describe("bad-1")).id

    done = await grctl(cli, "list", "--status", "failed", "--since", "1h")  # the runbook's first command
    assert done.rc == EXIT_OK, done
    lines = done.out.splitlines()
    assert lines[0].split()[:3] == ["WORKFLOW", "ID", "TYPE"]
    assert [line.split()[0] for line in lines[1:]] == ["bad-1", "bad-0"]
    assert all(line.split()[2] == "failed" for line in lines[1:])

    done = await grctl(cli, "list", "--status", "completed", "--limit", "2", "--json")
    assert [r["wf_id"] for r in json.loads(done.out)] == ["ok-2", "ok-1"]
    done = await grctl(cli, "workflow", "list", "--type", "Nothing")
    assert (done.rc, done.out, done.err.strip()) == (EXIT_OK, "", "no runs match"), done
    done = await grctl(cli, "list", "--since", "2999-01-01T00:00:00")
    assert done.rc == EXIT_OK and done.out == "", done
    for bad in (["--status", "exploded"], ["--since", "yesterday"], ["--limit", "0"]):
        done = await grctl(cli, "list", *bad)
        assert done.rc == EXIT_USAGE and "usage:" in done.err, done


async def test_version_and_start_without_an_id(cli: dict[str, str], client: Client) -> None:
    for args in (["--version"], ["version"]):
        done = await grctl(cli, *args)
        assert done.rc == EXIT_OK and done.out.startswith("grctl "), done
    done = await grctl(cli, "start", "CliFlow", "--json")
    assert done.rc == EXIT_OK, done
    started = json.loads(done.out)
    assert started["wf_id"] and (await client.describe(started["wf_id"])).id == started["run_id"]
    done = await grctl(cli, "start", "CliFlow")
    assert done.rc == EXIT_OK and done.out.startswith("Started workflow "), done
    generated = done.out.split()[2]
    assert generated != started["wf_id"]
    assert (await client.describe(generated)).wf_type == "CliFlow"
    done = await grctl(cli, "run", "CliFlow", "--input", '{"name": "Ada"}')
    assert json.loads(done.out) == {"greeting": "Hello, Ada!", "mode": "ok"}, done
    assert done.err.startswith("Started workflow "), done  # the generated id, away from the result


async def test_cancel_and_terminate_wait_for_the_end(cli: dict[str, str], client: Client,
                                                     tmp_path: Path) -> None:
    assert (await grctl(cli, "start", "CliFlow", "--id", "c-wait", "--input", '{"mode": "wait"}')).rc == 0
    await wait_history(client, "c-wait", "wait.started")
    done = await grctl(cli, "cancel", "c-wait", "--reason", "drill", "--wait")
    assert done.rc == EXIT_RUN_CANCELLED and "was cancelled" in done.err, done
    assert str((await client.describe("c-wait")).status) == "cancelled"

    assert (await grctl(cli, "start", "CliFlow", "--id", "t-wait", "--input", '{"mode": "slow"}')).rc == 0
    await wait_history(client, "t-wait", "step.started", step="slow_step")
    started = time.monotonic()
    done = await grctl(cli, "workflow", "terminate", "--id", "t-wait", "--wait")
    assert done.rc == EXIT_RUN_CANCELLED and "was terminated" in done.err, done
    assert time.monotonic() - started < 15  # not the step's 60 s
    assert str((await client.describe("t-wait")).status) == "terminated"

    done = await grctl(cli, "cancel", "t-wait", "--wait")  # nothing left to cancel
    assert done.rc == 6 and "already finished" in done.err, done


async def test_history_follow_without_a_run_ends_at_once(cli: dict[str, str]) -> None:
    assert (await grctl(cli, "run", "CliFlow", "--id", "h-done")).rc == EXIT_OK
    for args in (["history", "h-none", "--follow"], ["history", "h-done", "--run-id", "R9", "--follow"],
                 ["workflow", "history", "--id", "h-none", "--follow"]):
        started = time.monotonic()
        done = await grctl(cli, *args, timeout=10)
        assert done.rc == EXIT_NOT_FOUND and done.out == "", (args, done)
        assert time.monotonic() - started < 8, args


async def test_public_cli_shape(cli: dict[str, str], client: Client, nats_url: str, tmp_path: Path) -> None:
    hostport = nats_url.removeprefix("nats://")
    env = {k: v for k, v in cli.items() if k != "GRCTL_NATS_SERVERS"}  # -s host:port, as scripts say
    payload = tmp_path / "payload.json"
    payload.write_text('{"name": "Grace"}')
    done = await grctl(env, "-s", hostport, "-l", "warn", "workflow", "start", "--type", "CliFlow",
                       "--id", "pub-1", "--input-file", str(payload), "--wait")
    assert done.rc == EXIT_OK, done
    assert json.loads(done.out.split("\n", 1)[1]) == {"greeting": "Hello, Grace!", "mode": "ok"}
    done = await grctl(env, "workflow", "start", "--server-url", hostport, "--type", "CliFlow",
                       "--input", '{"mode": "wait"}', "--json")
    wf_id = json.loads(done.out)["wf_id"]
    await wait_history(client, wf_id, "wait.started")
    done = await grctl(env, "--server-url", hostport, "workflow", "cancel", "--id", wf_id,
                       "--reason", "Manual intervention required")
    assert done.rc == EXIT_OK and "Cancel requested" in done.out, done
    done = await grctl(env, "-s", hostport, "workflow", "history", "--id", "pub-1")
    assert done.rc == EXIT_OK and done.out.splitlines()[-1].split()[3] == "run.completed", done
    run_id = (await client.describe("pub-1")).id
    done = await grctl(env, "-s", hostport, "workflow", "history", "--id", "pub-1", "--run-id", run_id,
                       "--json")
    assert json.loads(done.out.splitlines()[0])["run_id"] == run_id, done
    done = await grctl(env, "-s", hostport, "workflow", "describe", "--id", "pub-1", "--json")
    assert json.loads(done.out)["status"] == "completed", done
    done = await grctl(env, "-s", hostport, "workflow", "start", "--type", "CliFlow", "--input", "{}",
                       "--input-file", str(payload))
    assert done.rc == EXIT_USAGE and "not allowed with" in done.err, done


async def test_engine_http_endpoints_and_json_logs(nats_url: str, subprocess_env: dict[str, str],
                                                   tmp_path: Path, connection: Connection) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    engine = ChildProcess([sys.executable, "-m", "grctl", "engine", "-s", nats_url, "--http",
                           f"127.0.0.1:{port}", "--log-format", "json"], subprocess_env, cwd=ROOT).start()
    worker = WorkerProcess("support.wf_cli", worker_env(subprocess_env, GRCTL_TEST_DIR=tmp_path)).start()
    try:
        await wait_status(f"{base}/readyz", 200)
        assert (await aget(f"{base}/healthz"))[0] == 200
        await worker.ready()
        client = Client(connection)
        runs = 5
        for i in range(runs):
            await client.run_workflow("CliFlow", f"m-{i}", {"name": str(i)})
        bad = await client.start_workflow("CliFlow", "m-bad", {"mode": "fail"})
        with pytest.raises(Exception, match="cli exploded"):
            await bad.result(timeout=10)
        await bad.close()
        url = f"{base}/metrics"
        text = await wait_value(url, "grctl_engine_runs_ended_total", runs, wf_type="CliFlow",
                                status="completed")
        assert value(text, "grctl_engine_runs_started_total", wf_type="CliFlow") == runs + 1
        text = await wait_value(url, "grctl_engine_runs_ended_total", 1, wf_type="CliFlow", status="failed")
        assert value(text, "grctl_engine_api_requests_total", kind="run.start", outcome="ok") == runs + 1
        assert value(text, "grctl_engine_api_request_seconds_count", kind="run.start") == runs + 1
        assert value(text, "grctl_engine_directives_total", kind="start", outcome="committed") == runs + 1
        assert value(text, "grctl_engine_commit_seconds_count") > 0
        assert value(text, "grctl_engine_commit_batch_messages_sum") >= 3 * (runs + 1)
        assert value(text, "grctl_engine_timers_fired_total") == 0
        assert value(text, "process_cpu_seconds_total") > 0
        await client.describe("m-0")
        with pytest.raises(Exception, match="not found"):
            await client.describe("m-none")
        text = (await aget(url))[1]
        assert value(text, "grctl_engine_api_requests_total", kind="run.describe", outcome="not_found") == 1
        assert (await aget(f"{base}/nothing"))[0] == 404
    finally:
        worker.kill()
        engine.stop()
    logged = [json.loads(line) for line in engine.lines if line.startswith("{")]
    assert any("engine running" in entry["message"] for entry in logged), engine.output
    assert all(entry["role"] == "engine" for entry in logged)


async def test_follow_is_not_left_waiting_by_a_missing_engine(subprocess_env: dict[str, str]) -> None:
    proc = await spawn(subprocess_env, "history", "x", "--follow")  # a NATS server but no engine
    done = await finish_proc(proc, timeout=30)
    assert done.rc == 7 and "no engine answers" in done.err, done
