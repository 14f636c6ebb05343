"""The deployment guide followed literally: its three NATS nodes (client TLS, routes authenticated by
certificate, the shipped accounts.conf), an engine host, a worker host and the operator's grctl, each
from its file in docs/examples/ with only host names and paths made local. Every role's user is the
least-privileged one the guide ships, and the engine still places its consumers on the stream leader."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemonkit import ROOT, Daemon, daemon_env
from natsauth import make_tls
from support.guide import EXAMPLES, GuideCluster
from support.secured import violations

from grctl.nats import authconfig
from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(240)

HOSTS = {"engine": "grctl-engine.yaml", "worker": "grctl-worker.yaml", "operator": "grctl-cli.yaml",
         "admin": "grctl-cli.yaml"}  # the system account's user: the operator's file with its user
# the console's passwords, as the engine file names them in $CREDENTIALS_DIRECTORY
CONSOLE = {"grctl_console-admin": "admin-secret-of-the-test",
           "grctl_console-viewer": "viewer-secret-of-the-test"}


def passwords(directory: Path) -> dict[str, str]:
    """The guide's step: ``python -m grctl.nats.authconfig --secrets > /etc/nats/secrets.env``."""
    made = subprocess.run([sys.executable, "-m", "grctl.nats.authconfig", "--secrets"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert made.returncode == 0, made.stderr
    (directory / "secrets.env").write_text(made.stdout)
    lines = [line for line in made.stdout.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def host_file(cluster: GuideCluster, role: str, ca: Path, password: str, directory: Path) -> Path:
    """The example file of ``role`` with local addresses, the test CA and the role's password file."""
    credentials = directory / "credentials"
    credentials.mkdir(parents=True)
    secret = credentials / "grctl_nats-password"  # as LoadCredential=grctl:/etc/grctl/credentials names it
    secret.write_text(password + "\n")
    if role == "engine":
        for name, value in CONSOLE.items():
            (credentials / name).write_text(value + "\n")
    text = cluster.addresses((EXAMPLES / HOSTS[role]).read_text())
    text = text.replace("/etc/grctl/ca.pem", str(ca)).replace("~/.config/grctl/nats-password", str(secret))
    if role == "admin":
        text = text.replace("user: grctl-operator", "user: sys-admin")
    text = text.replace("127.0.0.1:9465", f"127.0.0.1:{free_port()}")
    text = text.replace("127.0.0.1:9464", f"127.0.0.1:{free_port()}")
    path = directory / "grctl.yaml"
    path.write_text(text)
    return path


def placement(cluster: GuideCluster) -> tuple[str | None, dict[str, str | None]]:
    """The stream's leader and each durable consumer's leader, from the nodes' monitoring."""
    stream_leader, consumers = None, {}
    for node in cluster.nodes:
        try:
            jsz = node.monitor("jsz?accounts=true&streams=true&consumers=true&config=true")
        except (OSError, ValueError):
            continue
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if stream.get("name") != "grctl_state":
                    continue
                stream_leader = (stream.get("cluster") or {}).get("leader") or stream_leader
                for consumer in stream.get("consumer_detail") or []:
                    if (consumer.get("config") or {}).get("durable_name"):
                        consumers[consumer["name"]] = (consumer.get("cluster") or {}).get("leader")
    return stream_leader, consumers


def grctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grctl", *args], env=env, capture_output=True, text=True,
                          timeout=90, cwd=ROOT)


@dataclass
class Guide:
    cluster: GuideCluster
    files: dict[str, Path]
    envs: dict[str, dict[str, str]]
    engine: Daemon
    worker: Daemon

    async def grctl(self, role: str, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(grctl, self.envs[role], "-c", str(self.files[role]), *args)

    async def greet(self, wf_id: str) -> None:
        ran = await self.grctl("operator", "run", "Greeting", "--id", wf_id, "--input", '{"name": "Ada"}')
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout) == "Hello, Ada!"


@pytest.fixture
async def guide(tmp_path: Path) -> AsyncIterator[Guide]:
    """The guide's cluster, an engine host and a worker host running, the operator's and the system
    user's files ready."""
    pki = make_tls(tmp_path / "pki")
    secret = passwords(tmp_path)
    cluster = GuideCluster(tmp_path / "nats", {"server.pem": pki.cert_file, "server-key.pem": pki.key_file,
                                               "ca.pem": pki.ca_file}, {**os.environ, **secret})
    base = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    files, envs = {}, {}
    for role in HOSTS:
        account = authconfig.SYSTEM_ACCOUNT if role == "admin" else authconfig.ACCOUNT
        password = secret[authconfig.secret_variable(account, role, False)]
        files[role] = host_file(cluster, role, pki.ca_file, password, tmp_path / role)
        credentials = str(tmp_path / role / "credentials")
        envs[role] = daemon_env(base, tmp_path / role, CREDENTIALS_DIRECTORY=credentials)
    engine = Daemon(files["engine"], envs["engine"])
    worker = Daemon(files["worker"], envs["worker"])
    try:
        await asyncio.to_thread(cluster.start)
        for role in ("engine", "worker"):
            checked = await asyncio.to_thread(grctl_daemon_check, files[role], envs[role])
            assert checked.returncode == 0, checked.stderr
        engine.start().wait_for(r"ready: engine only \(no workflows to run\)", timeout=90)
        # A worker may not start at its first try while the new cluster settles (grctld retries it):
        # whichever generation comes up first serves.
        worker.start().wait_for(r"generation [0-9]+ ready: ", timeout=90)
        yield Guide(cluster, files, envs, engine, worker)
    finally:
        if worker.proc:
            worker.stop()
        if engine.proc:
            engine.stop()
        cluster.stop()


async def test_the_guides_files_run_a_least_privilege_cluster(guide: Guide) -> None:
    await guide.greet("guide-1")
    described = await guide.grctl("operator", "describe", "guide-1", "--json")
    assert json.loads(described.stdout)["status"] == "completed", described
    listed = await guide.grctl("operator", "list")
    assert "guide-1" in listed.stdout, listed

    # the engine keeps every durable consumer's leader on the stream leader (consumer step-down)
    deadline = time.monotonic() + 60
    while True:
        leader, consumers = await asyncio.to_thread(placement, guide.cluster)
        if leader and len(consumers) >= 4 and set(consumers.values()) == {leader}:
            break
        assert time.monotonic() < deadline, (leader, consumers)
        await asyncio.sleep(0.5)

    # the engine file's console asks for its passwords; the health endpoints stay open
    port = re.search(r"listen: 127\.0\.0\.1:(\d+)", guide.files["engine"].read_text())
    assert port, "the engine file names no listener"
    base = f"http://127.0.0.1:{port.group(1)}"
    assert await asyncio.to_thread(http_status, f"{base}/") == 401
    assert await asyncio.to_thread(http_status, f"{base}/", CONSOLE["grctl_console-viewer"]) == 200
    assert await asyncio.to_thread(http_status, f"{base}/readyz") == 200

    logs = guide.cluster.logs()
    for user in ("grctl-engine", "grctl-worker", "grctl-operator"):
        assert violations(logs, user) == [], user
    assert "may not publish" not in guide.engine.output + guide.worker.output
    for daemon in (guide.worker, guide.engine):
        daemon.signal(signal.SIGTERM)
        assert await asyncio.to_thread(daemon.wait_exit, 60) == 0


async def test_replacing_a_dead_node_under_a_new_name(guide: Guide) -> None:
    """The runbook: the JetStream meta leader's node dies for good; a new node joins under a new name; the
    dead peer is removed once a new meta leader is elected; the stream is whole again on the new node."""
    await guide.greet("before")
    status = await guide.grctl("operator", "cluster", "status", "--wait", "60")
    assert status.returncode == 0 and "3 replica(s)" in status.stdout, status
    peers = await guide.grctl("admin", "cluster", "peers")
    assert peers.returncode == 0, peers.stderr
    leader = re.search(r"meta leader: (nats\d)", peers.stdout)
    assert leader, peers.stdout
    dead = next(n for n in guide.cluster.nodes if n.name == leader.group(1))
    new = await asyncio.to_thread(guide.cluster.replace, dead, "nats4")

    removed = await guide.grctl("admin", "cluster", "remove-peer", dead.name, "--timeout", "120")
    assert removed.returncode == 0, removed.stderr + removed.stdout
    status = await guide.grctl("operator", "cluster", "status", "--wait", "180")
    assert status.returncode == 0, status.stdout + status.stderr
    assert new.name in status.stdout and dead.name not in status.stdout

    # every nats.servers names the new node instead of the dead one
    for path in guide.files.values():
        text = path.read_text().replace(f"127.0.0.1:{dead.client_port}", f"127.0.0.1:{new.client_port}")
        path.write_text(text)
    await guide.greet("after")


def grctl_daemon_check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grctl.daemon", "-c", str(config), "--check-config"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=config.parent)


def http_status(url: str, bearer: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
