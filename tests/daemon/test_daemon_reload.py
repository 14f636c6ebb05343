"""grctld end to end: reload by rename and by SIGHUP, invalid edits, module edits, systemd notification.

A real grctld subprocess, a real nats-server and a real engine process (fixtures in tests/conftest.py),
real files replaced by rename, real signals, a real unix datagram socket as NOTIFY_SOCKET.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from daemonkit import (
    Daemon,
    NotifySocket,
    config_text,
    daemon_env,
    gone,
    run,
    wait_file,
    write_atomic,
    write_flows,
)

from grctl import settings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def start_daemon(daemons: list[Daemon], config: Path, env: dict[str, str]) -> Daemon:
    d = Daemon(config, env).start()
    daemons.append(d)
    return d


async def test_reload_by_rename_drains_the_old_generation_without_losing_a_step(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
    notify: NotifySocket,
) -> None:
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    write_atomic(config, config_text([nats_url], shutdown="20s"))
    env = daemon_env(subprocess_env, tmp_path, NOTIFY_SOCKET=str(notify.path))
    d = start_daemon(daemons, config, env)
    gen1 = d.ready_pids(1)
    notify.wait_for("READY")

    slow = asyncio.create_task(run(nats_url, "Slow", "slow-1", {"seconds": 60, "tag": "s1"}))
    assert int(await wait_file(tmp_path / "marks" / "s1.started")) == gen1[0]
    before = await asyncio.gather(*(run(nats_url, "Quick", f"before-{i}", {"n": i}) for i in range(3)))

    mark = d.mark()
    write_atomic(config, config_text([nats_url], shutdown="20s", extra="reload: {watch_config: true}\n"))
    d.wait_for("reloading: configuration file changed", after=mark)
    during = [asyncio.create_task(run(nats_url, "Quick", f"during-{i}", {"n": i})) for i in range(5)]
    gen2 = d.ready_pids(2, after=mark)
    assert set(gen1).isdisjoint(gen2)
    d.wait_for("draining generation 1", after=mark)
    assert not (tmp_path / "marks" / "s1.done").exists()  # the step is still running at the handover
    d.wait_for("waiting up to", after=mark)
    assert psutil.pid_exists(gen1[0])  # and generation 1 waits for it
    (tmp_path / "marks" / "s1.release").touch()

    result = await asyncio.wait_for(slow, 30)
    assert result == {"tag": "s1", "version": "v1", "pid": gen1[0]}  # finished by the draining generation
    assert (tmp_path / "marks" / "s1.done").read_text() == str(gen1[0])
    d.wait_for("generation 1 drained and stopped", after=mark)
    assert await gone(gen1[0])
    after = await asyncio.gather(*during)
    assert [r["n"] for r in before] == [0, 1, 2] and [r["n"] for r in after] == [0, 1, 2, 3, 4]
    assert (await run(nats_url, "Quick", "after", {"n": 9}))["pid"] == gen2[0]
    assert not [line for line in d.lines if " ERROR " in line or "Traceback" in line]

    # an identical rewrite is not a change, neither for the file watch nor for the periodic check
    mark = d.mark()
    write_atomic(config, config.read_text())
    d.wait_for("written without a change", after=mark)
    await asyncio.sleep(settings.CONFIG_POLL_INTERVAL + 0.5)  # a periodic check has looked at the file since
    assert "reloading" not in "\n".join(d.lines[mark:])

    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


async def test_sighup_reload_and_an_invalid_edit_keeps_the_running_generation(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
    notify: NotifySocket,
) -> None:
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    write_atomic(config, config_text([nats_url], shutdown="3s"))
    d = start_daemon(daemons, config, daemon_env(subprocess_env, tmp_path, NOTIFY_SOCKET=str(notify.path)))
    d.ready_pids(1)

    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_for("reloading: SIGHUP", after=mark)
    gen2 = d.ready_pids(2, after=mark)

    # an invalid edit (by rename): logged as file:line:col, generation 2 keeps running
    mark, seen = d.mark(), len(notify.messages)
    write_atomic(
        config, config_text([nats_url], shutdown="3s").replace("shutdown_timeout: 3s", "shutdown_timeout: 3x")
    )
    where = re.escape(str(config))
    found = d.wait_for(rf"{where}:(\d+):(\d+): shutdown_timeout: '3x' is not a valid duration", after=mark)
    assert (found.group(1), found.group(2)) == ("3", "19")
    d.wait_for("configuration not reloaded: generation 2 keeps running", after=mark)
    status_at = notify.wait_for(
        "STATUS", after=seen, prefix=f"reload failed: {config}:3:19: shutdown_timeout"
    )
    assert notify.messages[status_at]["STATUS"].endswith("generation 2 keeps running")
    assert notify.messages[status_at]["READY"] == "1"  # the reload is over: systemd leaves "reloading"

    # SIGHUP with the invalid file: the same, and the old generation still serves
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_for(rf"{where}:3:19: shutdown_timeout", after=mark)
    assert all(psutil.pid_exists(p) for p in gen2)
    assert (await run(nats_url, "Quick", "still-served", {"n": 1}))["pid"] == gen2[0]
    assert "generation 3" not in "\n".join(d.lines[mark:])

    # a duplicate key is refused too (plain YAML would keep the last one silently)
    mark = d.mark()
    write_atomic(config, config_text([nats_url]) + "shutdown_timeout: 9s\n")
    d.wait_for(rf"{where}:\d+:1: duplicate key 'shutdown_timeout'", after=mark)

    # fixed: generation 3 takes over
    mark = d.mark()
    write_atomic(config, config_text([nats_url], shutdown="2s"))
    gen3 = d.ready_pids(3, after=mark)
    assert (await run(nats_url, "Quick", "fixed", {"n": 2}))["pid"] == gen3[0]
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


async def test_a_workflow_module_edit_is_picked_up_by_the_next_generation(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
) -> None:
    flows = write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    write_atomic(config, config_text([nats_url], shutdown="3s", extra="reload: {watch_workflows: true}\n"))
    d = start_daemon(daemons, config, daemon_env(subprocess_env, tmp_path))
    d.ready_pids(1)
    assert (await run(nats_url, "Quick", "one", {"n": 1}))["version"] == "v1"

    mark = d.mark()
    write_flows(flows.parent, "v2-edited")  # the source watch triggers the reload, no signal needed
    d.wait_for(r"reloading: workflow sources changed \(.*testflows\.py\)", after=mark)
    gen2 = d.ready_pids(2, after=mark)
    result = await run(nats_url, "Quick", "two", {"n": 2})
    assert result == {"n": 2, "version": "v2-edited", "pid": gen2[0]}

    # a module that no longer imports: the reload fails with the import error, v2 keeps serving
    mark = d.mark()
    write_atomic(flows, flows.read_text() + "\nraise RuntimeError('half-saved edit')\n")
    d.wait_for(
        r"generation 3 did not start: .*grctl\.yaml:1:13: workflows\[0\]: cannot import 'testflows': "
        r"RuntimeError: half-saved edit \(at .*testflows\.py:\d+\)",
        after=mark,
    )
    assert (await run(nats_url, "Quick", "three", {"n": 3}))["pid"] == gen2[0]
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


async def test_notify_socket_gets_ready_reloading_ready_stopping_and_watchdog(
    tmp_path: Path,
    nats_url: str,
    engine_process: object,
    subprocess_env: dict[str, str],
    daemons: list[Daemon],
    notify: NotifySocket,
) -> None:
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    write_atomic(config, config_text([nats_url], shutdown="2s"))
    env = daemon_env(subprocess_env, tmp_path, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="400000")
    d = start_daemon(daemons, config, env)
    ready = notify.wait_for("READY", "1")
    assert "generation 1 ready" in notify.messages[ready]["STATUS"]
    d.signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING", "1", after=ready)
    assert int(notify.messages[reloading]["MONOTONIC_USEC"]) > 0
    notify.wait_for("READY", "1", after=reloading + 1)
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert notify.states() == ["READY", "RELOADING", "READY", "STOPPING"]
    watchdogs = [m for m in notify.messages if m.get("WATCHDOG") == "1"]
    assert len(watchdogs) >= 2  # every 0.2s (half of WATCHDOG_USEC)
    # children never notify in the supervisor's name: all messages come from one sender, checked
    # indirectly: the only READY=1 messages are the supervisor's two
    assert sum(1 for m in notify.messages if m.get("READY") == "1") == 2
