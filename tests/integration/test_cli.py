"""The ``grctl`` command line as a user runs it: ``python -m grctl ...`` subprocesses against an engine
process and a worker process on a real nats-server; results, tables, JSON, ``history --follow``, and
the exit status of every error case."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.cli_run import Done, finish, grctl, spawn
from support.processes import WorkerProcess, worker_env
from support.sdk import kinds, wait_history

from grctl.cli.commands import (
    EXIT_BAD_INPUT,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_RUN_CANCELLED,
    EXIT_RUN_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from grctl.client.client import Client
from grctl.nats.connection import Connection
from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(90)



@pytest.fixture
async def cli(engine_process: subprocess.Popen, subprocess_env: dict[str, str],
              tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The environment of a ``grctl`` call (GRCTL_NATS_SERVERS set), with an engine and a worker
    serving ``CliFlow`` running."""
    worker = WorkerProcess("support.wf_cli", worker_env(subprocess_env, GRCTL_TEST_DIR=tmp_path)).start()
    try:
        await worker.ready()
        yield subprocess_env
    finally:
        worker.kill()  # nothing to check about its shutdown; a graceful one waits for its fetches


@pytest.fixture
def client(connection: Connection) -> Client:
    return Client(connection)


def table_kinds(text: str) -> list[str]:
    lines = text.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "(UTC)", "EVENT", "DETAILS"]
    return [line.split()[3] for line in lines[1:]]


async def test_run_describe_and_history(cli: dict[str, str], client: Client, tmp_path: Path) -> None:
    done = await grctl(cli, "run", "CliFlow", "--id", "cli-1", "--input", '{"name": "Ada"}')
    assert done.rc == 0, done
    assert json.loads(done.out) == {"greeting": "Hello, Ada!", "mode": "ok"}

    info = await client.describe("cli-1")
    done = await grctl(cli, "describe", "cli-1")
    assert done.rc == 0, done
    assert re.search(r"^Status:\s+completed$", done.out, re.M)
    assert re.search(rf"^Run id:\s+{info.id}$", done.out, re.M)
    described = json.loads((await grctl(cli, "describe", "cli-1", "--json")).out)
    assert (described["id"], described["wf_type"], described["status"]) == (info.id, "CliFlow", "completed")

    history = await client.get_history("cli-1")
    done = await grctl(cli, "history", "cli-1")
    assert done.rc == 0, done
    assert table_kinds(done.out) == kinds(history)
    assert 'result={"greeting": "Hello, Ada!", "mode": "ok"}' in done.out.splitlines()[-1]
    done = await grctl(cli, "history", "cli-1", "--json")
    rows = [json.loads(line) for line in done.out.splitlines()]
    assert [(r["seq"], r["kind"]) for r in rows] == [(e.seq, str(e.kind)) for e in history]
    assert rows[-1]["msg"]["result"] == {"greeting": "Hello, Ada!", "mode": "ok"}

    # The input from a file and from stdin; an explicit -s instead of the environment.
    (tmp_path / "input.json").write_text('{"name": "File", "mode": "from-file"}')
    done = await grctl(cli, "run", "CliFlow", "--id", "cli-2", "--input", f"@{tmp_path / 'input.json'}",
                       "-s", cli["GRCTL_NATS_SERVERS"])
    assert json.loads(done.out) == {"greeting": "Hello, File!", "mode": "from-file"}, done
    done = await grctl(cli, "run", "CliFlow", "--id", "cli-3", "--input", "@-", stdin='{"name": "Stdin"}')
    assert json.loads(done.out)["greeting"] == "Hello, Stdin!", done

    done = await grctl(cli, "start", "CliFlow", "--id", "cli-4", "--json")
    assert done.rc == 0, done
    started = json.loads(done.out)
    assert started == {"wf_id": "cli-4", "wf_type": "CliFlow", "run_id": (await client.describe("cli-4")).id}

    done = await grctl(cli, "start", "CliFlow", "--id", "cli-5", "--input", '{"mode": "fail"}', "--wait")
    assert done.rc == EXIT_RUN_FAILED, done
    assert done.out.startswith("Started workflow cli-5 (CliFlow), run ")
    assert "failed: ValueError: cli exploded" in done.err

    done = await grctl(cli, "run", "CliFlow", "--id", "cli-6", "--input", '{"mode": "wait"}',
                       "--timeout", "1")
    assert done.rc == EXIT_RUN_FAILED, done
    assert "timed out" in done.err
    assert (await client.describe("cli-6")).status == "timed_out"


async def test_follow_send_cancel_and_terminate(cli: dict[str, str], client: Client, tmp_path: Path) -> None:
    done = await grctl(cli, "start", "CliFlow", "--id", "cli-w", "--input", '{"mode": "wait"}')
    assert done.rc == 0, done
    follow = await spawn(cli, "history", "cli-w", "--follow")
    assert follow.stdout is not None
    seen: list[str] = []
    while not any("wait.started" in line for line in seen):
        line = await asyncio.wait_for(follow.stdout.readline(), 15)
        assert line, f"--follow ended early: {seen}"
        seen.append(line.decode())
    done = await grctl(cli, "send", "cli-w", "finish", "--payload", '{"result": "approved"}')
    assert done.rc == 0, done
    assert done.out.startswith("Sent event 'finish' to workflow cli-w")
    rest = await finish(follow)  # ends by itself once the run has ended
    assert rest.rc == 0, rest
    lines = seen + rest.out.splitlines()
    assert table_kinds("".join(seen) + rest.out) == kinds(await client.get_history("cli-w"))
    assert "event.received" in lines[-4] and 'finish payload={"result": "approved"}' in lines[-4]
    assert "run.completed" in lines[-1] and 'result="approved"' in lines[-1]
    done = await grctl(cli, "history", "cli-w", "--follow", "--json")  # a finished run: at once
    assert json.loads(done.out.splitlines()[-1])["kind"] == "run.completed", done

    waiting = await spawn(cli, "start", "CliFlow", "--id", "cli-c", "--input", '{"mode": "wait"}', "--wait")
    await wait_history(client, "cli-c", "wait.started")
    done = await grctl(cli, "cancel", "cli-c", "--reason", "no longer needed")
    assert done.rc == 0, done
    done = await finish(waiting)
    assert done.rc == EXIT_RUN_CANCELLED and "was cancelled" in done.err, done
    cancelled = (await client.get_history("cli-c"))[-1]
    assert (str(cancelled.kind), cancelled.msg.reason) == ("run.cancelled", "no longer needed")

    running = await spawn(cli, "run", "CliFlow", "--id", "cli-t", "--input", '{"mode": "slow"}')
    await wait_history(client, "cli-t", "step.started", step="slow_step")
    done = await grctl(cli, "terminate", "cli-t", "--reason", "stop it")
    assert done.rc == 0, done
    done = await finish(running)
    assert done.rc == EXIT_RUN_CANCELLED and "was terminated" in done.err, done
    assert json.loads((await grctl(cli, "describe", "cli-t", "--json")).out)["status"] == "terminated"
    for _ in range(100):  # the worker was told to stop the step
        if (tmp_path / "cli-t.cancelled").exists():
            break
        await asyncio.sleep(0.05)
    assert (tmp_path / "cli-t.cancelled").exists()


async def test_error_exit_status(cli: dict[str, str], client: Client, tmp_path: Path) -> None:
    assert (await grctl(cli, "run", "CliFlow", "--id", "cli-done")).rc == 0
    assert (await grctl(cli, "start", "CliFlow", "--id", "cli-busy", "--input", '{"mode": "wait"}')).rc == 0
    cases: list[tuple[int, str, list[str]]] = [
        (EXIT_NOT_FOUND, "workflow 'nope' not found", ["describe", "nope"]),
        (EXIT_NOT_FOUND, "workflow 'nope' not found", ["history", "nope"]),
        (EXIT_NOT_FOUND, "workflow 'nope' not found", ["send", "nope", "finish"]),
        (EXIT_NOT_FOUND, "workflow 'nope' not found", ["cancel", "nope"]),
        (EXIT_NOT_FOUND, "workflow 'nope' not found", ["terminate", "nope"]),
        (EXIT_NOT_FOUND, "has no run 'R1'", ["history", "cli-done", "--run-id", "R1"]),
        (EXIT_REFUSED, "'Unknown' is not registered", ["run", "Unknown", "--id", "cli-u"]),
        (EXIT_REFUSED, "already has an active run", ["start", "CliFlow", "--id", "cli-busy"]),
        (EXIT_REFUSED, "has already finished", ["send", "cli-done", "finish"]),
        (EXIT_REFUSED, "has already finished", ["terminate", "cli-done"]),
        (EXIT_BAD_INPUT, "--input is not valid JSON", ["start", "CliFlow", "--id", "x", "--input", "{bad"]),
        (EXIT_BAD_INPUT, "--payload is not valid JSON", ["send", "cli-busy", "finish", "--payload", "'a'"]),
        (EXIT_BAD_INPUT, "cannot read", ["run", "CliFlow", "--id", "x", "--input", f"@{tmp_path}/none"]),
        (EXIT_BAD_INPUT, "invalid workflow id 'a.b'", ["run", "CliFlow", "--id", "a.b"]),
        (EXIT_BAD_INPUT, "invalid workflow type 'Cli Flow'", ["start", "Cli Flow", "--id", "x"]),
        (EXIT_BAD_INPUT, "invalid event name 'a>b'", ["send", "cli-busy", "a>b"]),
        (EXIT_BAD_INPUT, "at most 255 bytes long (it is 5000)", ["run", "CliFlow", "--id", "i" * 5000]),
        (EXIT_BAD_INPUT, "must be at most 255 bytes long (it is 300)", ["send", "cli-busy", "e" * 300]),
        (EXIT_BAD_INPUT, "must be at most 255 bytes long", ["history", "cli-done", "--run-id", "r" * 256]),
        (EXIT_USAGE, "required: TYPE", ["start"]),
    ]
    # Four at a time: twenty interpreters starting at once on two loaded cores can take longer than
    # a command's deadline, which would test the machine rather than the exit statuses.
    slots = asyncio.Semaphore(4)

    async def one(args: list[str]) -> Done:
        async with slots:
            return await grctl(cli, *args)

    results = await asyncio.gather(*(one(args) for _, _, args in cases))
    for (rc, message, args), done in zip(cases, results, strict=True):
        assert (done.rc, done.out) == (rc, ""), f"{args}: {done!r}"
        assert message in done.err and done.err.startswith(("grctl: ", "usage: ")), f"{args}: {done!r}"
        assert "Traceback" not in done.err
    assert str((await client.describe("cli-busy")).status) == "running"  # nothing was sent to it
    assert (await grctl(cli, "run", "CliFlow", "--id", "cli-after-bad")).rc == 0  # the engine still serves


async def test_unreachable_server_and_missing_engine(nats_url: str, subprocess_env: dict[str, str]) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    by_option, by_env, no_engine, bad_env = await asyncio.gather(
        grctl(subprocess_env, "-s", nowhere, "describe", "x"),
        grctl(dict(subprocess_env, GRCTL_NATS_SERVERS=nowhere), "run", "CliFlow", "--id", "x"),
        grctl(subprocess_env, "describe", "x"),  # a NATS server, but no engine on it
        grctl(dict(subprocess_env, GRCTL_NATS_SERVERS='["nats://a:1"'), "describe", "x"))
    assert bad_env.rc == EXIT_USAGE and "GRCTL_NATS_SERVERS" in bad_env.err, bad_env
    assert by_option.rc == EXIT_UNREACHABLE, by_option
    assert f"cannot connect to NATS at {nowhere}" in by_option.err, by_option
    assert by_env.rc == EXIT_UNREACHABLE and nowhere in by_env.err, by_env
    assert no_engine.rc == EXIT_UNREACHABLE and "no engine answers" in no_engine.err, no_engine
    assert all("Traceback" not in done.err for done in (by_option, by_env, no_engine, bad_env))

    script = Path(sys.executable).with_name("grctl")  # the console script, as installed
    if script.exists():
        proc = await asyncio.create_subprocess_exec(str(script), "--help", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0 and b"exit status:" in out
