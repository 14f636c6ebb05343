"""grctld against a nats-server configured for each way to authenticate (user/password, token, nkey
seed, .creds file, TLS with a CA made here): workflows run, a wrong secret gives a clear error, and no
secret shows in the logs or in --print-config."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from daemonkit import Daemon, config_text, daemon_env, run, write_atomic, write_flows
from natsauth import SETUPS, auth_server, user_password

from grctl.daemon.config import load_config

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("kind", list(SETUPS))
async def test_connects_with_each_kind_of_credentials(
    kind: str,
    tmp_path: Path,
    subprocess_env: dict[str, str],
) -> None:
    setup = SETUPS[kind](tmp_path)
    server = auth_server(setup, tmp_path)
    server.start()
    url = f"{setup.scheme}://127.0.0.1:{server.port}"
    write_flows(tmp_path / "flows", "v1")
    config = tmp_path / "grctl.yaml"
    env = daemon_env(subprocess_env, tmp_path, **setup.env)
    daemons: list[Daemon] = []
    try:
        # --print-config shows the setup, masked
        write_atomic(config, config_text([url], shutdown="2s", engine=True) + setup.nats)
        printed = subprocess.run(
            [sys.executable, "-m", "grctl.daemon", "-c", str(config), "--print-config"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert not [s for s in setup.secrets if s in printed]

        d = Daemon(config, env).start()
        daemons.append(d)
        d.ready_pids(1)
        cfg = load_config(str(config), environ=env)
        options = {k: v for k, v in cfg.nats.connect_options().items() if k not in ("servers", "name")}
        result = await run(url, "Quick", f"auth-{kind}", {"n": 7}, **options)
        assert result["n"] == 7
        d.signal(signal.SIGTERM)
        assert await asyncio.to_thread(d.wait_exit, 30) == 0

        # a wrong secret: a clear error, exit code 1 (the embedded engine cannot connect either)
        write_atomic(config, config_text([url], shutdown="2s", engine=True) + setup.wrong)
        bad = Daemon(config, env).start()
        daemons.append(bad)
        assert await asyncio.to_thread(bad.wait_exit, 30) == 1
        bad.wait_for(rf"the embedded engine did not start: {setup.refused} \(")
        for output in (d.output, bad.output):
            leaked = [s for s in setup.secrets if s in output]
            assert not leaked, f"secret in the logs: {leaked}"
    finally:
        for daemon in daemons:
            daemon.stop()
        server.cleanup()


async def test_a_wrong_password_with_an_external_engine_keeps_retrying_with_a_clear_error(
    tmp_path: Path,
    subprocess_env: dict[str, str],
) -> None:
    setup = user_password(tmp_path)
    with auth_server(setup, tmp_path) as server:
        write_flows(tmp_path / "flows", "v1")
        config = tmp_path / "grctl.yaml"
        write_atomic(config, config_text([server.url], shutdown="2s") + setup.wrong)
        d = Daemon(config, daemon_env(subprocess_env, tmp_path)).start()
        try:
            d.wait_for(
                r"generation 1 did not start: NATS refused the credentials "
                r"\(.*Authorization Violation.*\): check nats.user/password"
            )
            d.wait_for(r"retrying in 0\.5s")
            d.wait_for(r"generation 2 did not start: NATS refused the credentials")
            d.signal(signal.SIGTERM)
            assert await asyncio.to_thread(d.wait_exit, 30) == 0
            assert not [s for s in setup.secrets if s in d.output]
        finally:
            d.stop()
