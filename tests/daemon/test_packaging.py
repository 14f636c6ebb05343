"""packaging/: the systemd unit passes ``systemd-analyze verify``; the .deb builds, unpacks, and its own
grctld checks and runs the shipped configuration."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from daemonkit import ROOT, Daemon, run
from support.cluster import NatsCluster

from grctl.nats.server import free_port

UNIT = ROOT / "packaging" / "systemd" / "grctld.service"
pytestmark = pytest.mark.timeout(300)


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_has_what_the_daemon_needs() -> None:
    s = unit_settings(UNIT.read_text())
    assert s["Type"] == ["notify"] and s["KillMode"] == ["mixed"]
    assert s["ExecStartPre"][0].endswith("--check-config")
    assert s["ExecReload"] == [
        "/usr/bin/grctld -c ${GRCTLD_CONFIG} --check-config",
        "/bin/kill -HUP $MAINPID",
    ]
    assert int(s["TimeoutStopSec"][0]) > 30 + 5  # the default shutdown_timeout plus grctld's kill margin
    assert s["User"] == ["grctl"] and s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert s["PrivateTmp"] == ["yes"] and "AF_UNIX" in s["RestrictAddressFamilies"][0].split()
    assert s["LoadCredential"] and s["EnvironmentFile"] == ["-/etc/default/grctld"]
    sysusers = (ROOT / "packaging" / "sysusers.d" / "grctl.conf").read_text()
    assert re.search(r"^u grctl - ", sysusers, re.MULTILINE)
    assert (
        "/etc/grctl/credentials 0700 root root"
        in (ROOT / "packaging" / "tmpfiles.d" / "grctl.conf").read_text()
    )


def verify_unit(unit_text: str, grctld: Path, tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = tmp_path / "grctld.service"
    unit.write_text(unit_text.replace("/usr/bin/grctld", str(grctld)))
    out = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    fake = tmp_path / "grctld"  # verify wants the executables to exist
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    verify_unit(UNIT.read_text(), fake, tmp_path)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (apt-get install dpkg)")
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    probe = subprocess.run([python, "-c", "import ensurepip, venv"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot make virtual environments (apt-get install python3-venv)")
    out = tmp_path_factory.mktemp("deb")
    env = {**os.environ, "PYTHON": python}
    build = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build-deb.sh"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    path = Path(build.stdout.strip().splitlines()[-1])
    assert path.is_file()
    yield path


@pytest.fixture(scope="module")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def test_deb_metadata(deb: Path) -> None:
    info = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Package", "Depends"], capture_output=True, text=True, check=True
    ).stdout
    assert "Package: grctl" in info and "python3 (>=" in info
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True)
    assert b"./conffiles" in conffiles.stdout or b"conffiles" in conffiles.stdout
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for entry in (
        "./lib/systemd/system/grctld.service",
        "./usr/lib/sysusers.d/grctl.conf",
        "./usr/lib/tmpfiles.d/grctl.conf",
        "./etc/default/grctld",
        "./etc/grctl/grctl.yaml",
        "./usr/bin/grctld -> ../../opt/grctl/bin/grctld",
        "./usr/bin/grctl -> ../../opt/grctl/bin/grctl",
        "./usr/share/doc/grctl/deployment.md",
        "./usr/share/doc/grctl/examples/grctl-engine.yaml",
        "./usr/share/doc/grctl/examples/grctl-worker.yaml",
        "./usr/share/doc/grctl/examples/nats-node.conf",
        "./usr/share/doc/grctl/examples/accounts.conf",
        "./usr/share/doc/grctl/examples/nats-server.service",
        "./opt/grctl/bin/nats-server",
        "grctl/schemas/grctl.schema.json",
    ):
        assert entry in listing, entry


def test_deb_layout_and_conffiles(unpacked: Path, tmp_path: Path) -> None:
    script = unpacked / "opt/grctl/bin/grctld"
    assert script.read_text().splitlines()[0] == "#!/opt/grctl/bin/python"  # relocated from the build root
    assert "grctl-deb." not in (unpacked / "opt/grctl/pyvenv.cfg").read_text()
    assert os.readlink(unpacked / "usr/bin/grctld") == "../../opt/grctl/bin/grctld"
    assert (
        (unpacked / "etc/grctl/grctl.yaml")
        .read_text()
        .startswith("# yaml-language-server: $schema=/opt/grctl/share/grctl.schema.json")
    )
    verify_unit(
        (unpacked / "lib/systemd/system/grctld.service").read_text(), unpacked / "usr/bin/grctld", tmp_path
    )


def packaged_grctld(unpacked: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRCTL_", "PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(unpacked / "opt/grctl/bin/python"), str(unpacked / "opt/grctl/bin/grctld"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_packaged_grctld_checks_the_shipped_example(unpacked: Path) -> None:
    out = packaged_grctld(unpacked, "-c", str(unpacked / "etc/grctl/grctl.yaml"), "--check-config")
    assert out.returncode == 0, out.stderr
    assert "OK (1 workflow type(s): Greeting)" in out.stdout
    # it is the packaged code that ran, not the source tree
    where = packaged_grctld(unpacked, "--version")
    assert where.returncode == 0 and where.stdout.startswith("grctld ")
    probe = subprocess.run(
        [str(unpacked / "opt/grctl/bin/python"), "-c", "import grctl; print(grctl.__file__)"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
        cwd=unpacked,
        check=True,
    )
    assert probe.stdout.startswith(str(unpacked / "opt/grctl/lib"))


async def test_packaged_grctld_runs_the_shipped_example(unpacked: Path, tmp_path: Path) -> None:
    port = free_port()
    text = (unpacked / "etc/grctl/grctl.yaml").read_text()
    text = text.replace("port: 4225", f"port: {port}").replace(
        "shutdown_timeout: 30s", "shutdown_timeout: 2s"
    )
    config = tmp_path / "grctl.yaml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRCTL_", "PYTHON", "VIRTUAL_ENV"))}
    packaged = [str(unpacked / "opt/grctl/bin/python"), str(unpacked / "opt/grctl/bin/grctld")]
    d = Daemon(config, env, command=packaged).start()
    try:
        d.ready_pids(1, timeout=60)
        result = await run(f"nats://127.0.0.1:{port}", "Greeting", "packaged-1", {"name": "deb"})
        assert result == "Hello, deb!"
        d.signal(signal.SIGTERM)
        assert await asyncio.to_thread(d.wait_exit, 30) == 0
    finally:
        d.stop()


def role_file(example: Path, urls: list[str], target: Path) -> Path:
    """A shipped role example pointed at test servers (its servers and credentials replaced)."""
    data = yaml.safe_load(example.read_text())
    data["nats"] = {"servers": urls}
    data["shutdown_timeout"] = "2s"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(data))
    return target


async def test_packaged_engine_host_and_worker_host(unpacked: Path, tmp_path: Path) -> None:
    """An engine-only host and a worker-only host made from the shipped examples, and the packaged
    grctl reading the worker host's file, run a workflow on a three-node NATS cluster."""
    examples = unpacked / "usr/share/doc/grctl/examples"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRCTL_", "PYTHON", "VIRTUAL_ENV"))}
    python = str(unpacked / "opt/grctl/bin/python")
    with NatsCluster(3, root=tmp_path / "cluster") as cluster:
        engine_file = role_file(examples / "grctl-engine.yaml", cluster.urls, tmp_path / "engine/grctl.yaml")
        worker_file = role_file(examples / "grctl-worker.yaml", cluster.urls, tmp_path / "worker/grctl.yaml")
        engine = Daemon(engine_file, env, command=[python, str(unpacked / "opt/grctl/bin/grctld")]).start()
        worker = Daemon(worker_file, env, command=[python, str(unpacked / "opt/grctl/bin/grctld")]).start()
        try:
            engine.wait_for(r"ready: engine only", timeout=60)
            worker.ready_pids(1, timeout=60)
            ran = await asyncio.to_thread(
                subprocess.run, [python, str(unpacked / "opt/grctl/bin/grctl"), "-c", str(worker_file), "run",
                                 "Greeting", "--id", "roles-1", "--input", '{"name": "hosts"}'],
                capture_output=True, text=True, env=env, timeout=60)
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout.strip() == '"Hello, hosts!"'
            assert cluster.stream_info("grctl_state")["config"]["num_replicas"] == 3
            for daemon in (worker, engine):
                daemon.signal(signal.SIGTERM)
                assert await asyncio.to_thread(daemon.wait_exit, 30) == 0
        finally:
            worker.stop()
            engine.stop()
