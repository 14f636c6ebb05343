"""grctld against a nats-server configured for each way to authenticate (user/password, token, nkey
seed, .creds file, TLS with a CA made here): workflows run, a wrong secret gives a clear error, and no
secret shows in the logs or in --print-config."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nkeys
import pytest
from daemonkit import Daemon, config_text, daemon_env, run, write_atomic, write_flows
from natsauth import Operator, make_tls, new_keypair, public, seed_text

from grctl.daemon.config import load_config
from grctl.nats.server import NatsServerProcess

pytestmark = pytest.mark.timeout(120)


@dataclass
class Setup:
    server_conf: str
    nats: str  # the daemon's nats section (without servers)
    wrong: str  # the same with a wrong secret
    secrets: list[str]
    scheme: str = "nats"
    env: dict[str, str] = field(default_factory=dict)
    refused: str = "NATS refused the credentials"


def user_password(d: Path) -> Setup:
    pw = "pw-" + secrets.token_hex(8)
    (d / "secrets").mkdir()
    (d / "secrets" / "nats-password").write_text(pw + "\n")
    (d / "secrets" / "wrong").write_text("not-" + pw)
    return Setup(
        f'authorization {{ user: alice, password: "{pw}" }}\n',
        "  user: alice\n  password_file: secrets/nats-password\n",
        "  user: alice\n  password_file: secrets/wrong\n",
        [pw, "not-" + pw],
    )


def token(d: Path) -> Setup:
    tok = "tok-" + secrets.token_hex(8)
    creds = d / "credentials"  # as systemd's LoadCredential= would provide it
    creds.mkdir()
    (creds / "nats-token").write_text(tok)
    (creds / "wrong-token").write_text(tok[::-1])
    return Setup(
        f'authorization {{ token: "{tok}" }}\n',
        "  token_file: nats-token\n",
        "  token_file: wrong-token\n",
        [tok, tok[::-1]],
        env={"CREDENTIALS_DIRECTORY": str(creds)},
    )


def nkey(d: Path) -> Setup:
    user, other = new_keypair(nkeys.PREFIX_BYTE_USER), new_keypair(nkeys.PREFIX_BYTE_USER)
    (d / "user.nk").write_text(seed_text(user) + "\n")
    (d / "other.nk").write_text(seed_text(other) + "\n")
    return Setup(
        f"authorization {{ users = [ {{ nkey: {public(user)} }} ] }}\n",
        "  nkey_seed_file: user.nk\n",
        "  nkey_seed_file: other.nk\n",
        [seed_text(user), seed_text(other)],
    )


def creds(d: Path) -> Setup:
    good, stranger = Operator.create(), Operator.create()
    (d / "grctl.creds").write_text(good.creds())
    (d / "stranger.creds").write_text(stranger.creds())
    return Setup(
        good.server_config(),
        "  credentials_file: grctl.creds\n",
        "  credentials_file: stranger.creds\n",
        [seed_text(good.user), seed_text(stranger.user)],
    )


def tls(d: Path) -> Setup:
    try:
        ca = make_tls(d / "pki")
        other = make_tls(d / "other-pki")
    except FileNotFoundError:
        pytest.skip("the openssl command line tool is not installed (apt-get install openssl)")
    # mutual TLS: the server verifies the client's certificate too
    client = f"    cert_file: {ca.client_cert}\n    key_file: {ca.client_key}\n"
    return Setup(
        f'tls {{ cert_file: "{ca.cert_file}", key_file: "{ca.key_file}", '
        f'ca_file: "{ca.ca_file}", verify: true }}\n',
        f"  tls:\n    ca_file: {ca.ca_file}\n" + client,
        f"  tls:\n    ca_file: {other.ca_file}\n" + client,
        [ca.key_file.read_text().splitlines()[1], ca.client_key.read_text().splitlines()[1]],
        scheme="tls",
        refused="TLS with NATS failed",
    )


SETUPS: dict[str, Callable[[Path], Setup]] = {
    "user-password": user_password,
    "token": token,
    "nkey-seed": nkey,
    "creds-file": creds,
    "tls": tls,
}


@pytest.mark.parametrize("kind", list(SETUPS))
async def test_connects_with_each_kind_of_credentials(
    kind: str,
    tmp_path: Path,
    subprocess_env: dict[str, str],
) -> None:
    setup = SETUPS[kind](tmp_path)
    conf = tmp_path / "nats-server.conf"
    conf.write_text(setup.server_conf)
    server = NatsServerProcess(store_dir=tmp_path / "store", config_file=conf, log_file=tmp_path / "nats.log")
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
    conf = tmp_path / "nats-server.conf"
    conf.write_text(setup.server_conf)
    with NatsServerProcess(store_dir=tmp_path / "store", config_file=conf) as server:
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
