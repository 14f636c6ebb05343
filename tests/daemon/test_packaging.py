"""packaging/: the systemd unit passes ``systemd-analyze verify``; the Debian source package builds
offline and the .deb is built from it unpacked afresh; both are lintian-clean but for their
commented overrides; the .deb holds what policy asks, and its own grctld checks and runs the shipped
examples."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from daemonkit import ROOT, Daemon, run
from support.cluster import NatsCluster
from support.pkgkit import lintian, need, uncommented_overrides

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
    assert s["ExecCondition"] == ["/usr/bin/test -e ${GRCTLD_CONFIG}"]  # nothing runs before the file
    assert s["ExecReload"] == [
        "/usr/bin/grctld -c ${GRCTLD_CONFIG} --check-config",
        "/bin/kill -HUP $MAINPID",
    ]
    assert int(s["TimeoutStopSec"][0]) > 30 + 5  # the default shutdown_timeout plus grctld's kill margin
    assert s["NotifyAccess"] == ["main"]  # grctld extends it while draining (EXTEND_TIMEOUT_USEC)
    assert s["User"] == ["grctl"] and s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert s["PrivateTmp"] == ["yes"] and "AF_UNIX" in s["RestrictAddressFamilies"][0].split()
    assert s["LoadCredential"] and s["EnvironmentFile"] == ["-/etc/default/grctld"]
    sysusers = (ROOT / "packaging" / "sysusers.d" / "grctl.conf").read_text()
    assert re.search(r"^u grctl - ", sysusers, re.MULTILINE)
    assert (
        "/etc/grctl/credentials 0700 root root"
        in (ROOT / "packaging" / "tmpfiles.d" / "grctl.conf").read_text()
    )


def test_the_debian_build_wants_the_python_the_wheels_are_for() -> None:
    """The vendored wheels are cp311 (packaging/vendor.lock): a builder with another python3 refuses
    the build on its dependencies instead of failing in pip (the RPM spec's check is in
    test_packaging_rpm.py)."""
    control = (ROOT / "debian/control").read_text()
    build_depends = re.search(r"^Build-Depends:(.*(?:\n .*)*)", control, re.MULTILINE)
    assert build_depends is not None
    wanted = {d.strip() for d in build_depends[1].replace("\n", " ").split(",")}
    assert {"python3 (>= 3.11)", "python3 (<< 3.12)"} <= wanted
    assert "CPython 3.11" in (ROOT / "packaging/vendor.lock").read_text()


def verify_unit(unit_text: str, grctld: Path, tmp_path: Path) -> None:
    need("systemd-analyze")
    tool = "systemd-analyze"
    unit = tmp_path / "grctld.service"
    unit.write_text(unit_text.replace("/usr/bin/grctld", str(grctld)))
    out = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    fake = tmp_path / "grctld"  # verify wants the executables to exist
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    verify_unit(UNIT.read_text(), fake, tmp_path)


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_deb_metadata(deb: Path) -> None:
    depends = [d.strip() for d in deb_field(deb, "Depends").split(",")]
    assert any(d.startswith("libc6 (>= 2.") for d in depends)
    assert any(d.startswith("libgcc-s1") for d in depends)
    assert "systemd | systemd-standalone-sysusers | systemd-sysusers" in depends  # the user's creator
    assert any(re.fullmatch(r"python3\.\d+", d) for d in depends)  # the interpreter the environment uses
    assert "@localhost" not in deb_field(deb, "Maintainer") and deb_field(deb, "Homepage").startswith("https://")
    control = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "md5sums" in control and "conffiles" in control
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for entry in (
        "./lib/systemd/system/grctld.service",
        "./usr/lib/sysusers.d/grctl.conf",
        "./usr/lib/tmpfiles.d/grctl.conf",
        "./etc/default/grctld",
        "./usr/bin/grctld -> /opt/grctl/bin/grctld",
        "./usr/bin/grctl -> /opt/grctl/bin/grctl",
        "./usr/share/doc/grctl/copyright",
        "./usr/share/doc/grctl/changelog.Debian.gz",
        "./usr/share/man/man8/grctld.8.gz",
        "./usr/share/man/man1/grctl.1.gz",
        "./usr/share/doc/grctl/deployment.md",
        "./usr/share/doc/grctl/examples/grctl-single-node.yaml",
        "./usr/share/doc/grctl/examples/grctl-engine.yaml",
        "./usr/share/doc/grctl/examples/grctl-worker.yaml",
        "./usr/share/doc/grctl/examples/nats-node.conf",
        "./usr/share/doc/grctl/examples/accounts.conf",
        "./usr/share/doc/grctl/examples/nats-server.service",
        "./opt/grctl/bin/nats-server",
        "grctl/schemas/grctl.schema.json",
    ):
        assert entry in listing, entry
    # no configuration file: the service runs nothing until the host's role file is in place
    assert "./etc/grctl/grctl.yaml" not in listing


def test_deb_holds_only_what_runs_and_nothing_of_the_build(unpacked: Path, tmp_path: Path) -> None:
    env = unpacked / "opt/grctl"
    assert (env / "bin/grctld").read_text().splitlines()[0] == "#!/opt/grctl/bin/python"
    names = {p.name for p in (env / "bin").iterdir()}  # no activate scripts, no pip
    python = next(name for name in names if re.fullmatch(r"python3\.\d+", name))
    assert names == {"grctl", "grctld", "nats-server", "python", "python3", python}
    assert os.readlink(env / "bin" / python) == f"/usr/bin/{python}"  # absolute, to the system's
    site = next(env.glob("lib/python3.*/site-packages"))
    for tool in ("pip", "setuptools", "_distutils_hack", "wheel"):
        assert not list(site.glob(tool)) and not list(site.glob(f"{tool}-*.dist-info")), tool
    assert not list(site.rglob("direct_url.json"))
    # every module compiled, no path of the build inside any file
    sources = [p for p in site.rglob("*.py") if "__pycache__" not in p.parts]
    compiled = {p.name.split(".")[0] + "@" + str(p.parent.parent) for p in site.rglob("__pycache__/*.pyc")}
    assert all(f"{p.stem}@{p.parent}" in compiled for p in sources)
    leaks = subprocess.run(["grep", "-rlaE", "grctl-(build|deb|rpm|vendor)\\.[A-Za-z0-9]{6}", str(unpacked)],
                           capture_output=True, text=True).stdout.split()
    assert leaks == []
    # stripped: no symbol table in any object
    objects = [*site.rglob("*.so"), env / "bin/nats-server"]
    for obj in objects:
        sections = subprocess.run(["readelf", "-S", "-W", str(obj)], capture_output=True, text=True,
                                  check=True).stdout
        assert ".symtab" not in sections, obj
    assert (env / "share/grctl.schema.json").resolve().is_file()
    verify_unit(
        (unpacked / "lib/systemd/system/grctld.service").read_text(), env / "bin/grctld", tmp_path
    )


def test_source_package_and_deb_are_lintian_clean_but_for_commented_overrides(deb_source: Path,
                                                                               deb: Path) -> None:
    findings = lintian(deb_source, deb)  # the .changes names the .dsc, which names its archives
    assert findings == [], "\n".join(findings)
    overrides = (ROOT / "debian/grctl.lintian-overrides").read_text()
    assert "grctl: " in overrides and uncommented_overrides(overrides) == []  # each says why
    source = ROOT / "debian/source/lintian-overrides"
    assert not source.exists() or uncommented_overrides(source.read_text()) == []


def test_source_package_unpacks_to_the_tree_the_deb_is_built_from(deb_source: Path, tmp_path: Path) -> None:
    """3.0 (quilt): the sources as the orig tarball, the vendored files as its "vendor" component and
    debian/ in its own archive; dpkg-source -x (which checks each archive's checksums) gives the tree
    that build-deb.sh builds the .deb in, offline, with vendor/ holding exactly the pinned files."""
    version = subprocess.run(["dpkg-parsechangelog", "-l", str(ROOT / "debian/changelog"), "-SVersion"],
                             capture_output=True, text=True, check=True).stdout.strip()
    upstream = version.rsplit("-", 1)[0]
    dsc = deb_source.with_name(f"grctl_{version}.dsc")
    text = dsc.read_text()
    assert "\nFormat: 3.0 (quilt)\n" in f"\n{text}"
    sha256 = text.split("Checksums-Sha256:\n", 1)[1].split("\nFiles:", 1)[0]
    assert sorted(line.split()[2] for line in sha256.splitlines()) == [
        f"grctl_{version}.debian.tar.xz",
        f"grctl_{upstream}.orig-vendor.tar.gz",
        f"grctl_{upstream}.orig.tar.gz",
    ]
    assert f" {dsc.name}\n" in deb_source.read_text()
    tree = tmp_path / "source"
    unpacked = subprocess.run(["dpkg-source", "-x", str(dsc), str(tree)], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
    assert unpacked.returncode == 0, unpacked.stderr
    pinned = re.findall(r"--hash=sha256:([0-9a-f]{64})", (ROOT / "packaging/vendor.lock").read_text())
    vendored = [hashlib.sha256(path.read_bytes()).hexdigest() for path in (tree / "vendor").iterdir()]
    assert sorted(vendored) == sorted(pinned)
    assert (tree / "debian/source/format").read_text() == "3.0 (quilt)\n"
    assert (tree / "packaging/make-tree.sh").is_file() and not (tree / "packaging/vendor").exists()
    # the orig tarball is the sources only: debian/ comes from the Debian archive, and nothing of a
    # checkout's build or tools
    listing = subprocess.run(["tar", "-tzf", str(dsc.with_name(f"grctl_{upstream}.orig.tar.gz"))],
                             capture_output=True, text=True, check=True).stdout.split()
    assert f"grctl-{upstream}/pyproject.toml" in listing
    not_source = re.compile(r"/(debian|\.git|\.venv|dist|build|__pycache__|[^/]*\.egg-info)(/|$)")
    stray = [name for name in listing if not_source.search(name)]
    assert stray == []


def test_an_override_without_its_own_comment_is_found() -> None:
    text = "# why the first\ngrctl: tag-one\ngrctl: tag-two\n\ngrctl: tag-three\n# why\n\ngrctl: tag-four\n"
    assert uncommented_overrides(text) == ["grctl: tag-two", "grctl: tag-three", "grctl: tag-four"]
    assert uncommented_overrides("# why\ngrctl: tag-one\n  # why, indented\n  grctl: tag-two\n") == []


def test_lintian_that_does_not_run_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lintian that crashes (or exits 1 saying nothing) is not a clean package."""
    fake = tmp_path / "lintian"
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    for status, says in ((2, ""), (1, ""), (0, "E: grctl: some-tag\n")):
        fake.write_text(f"#!/bin/sh\nprintf '{says}'\nexit {status}\n")
        fake.chmod(0o755)
        with pytest.raises(AssertionError, match=f"lintian exited {status}"):
            lintian(tmp_path / "grctl.deb")


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
    example = unpacked / "usr/share/doc/grctl/examples/grctl-single-node.yaml"
    assert example.read_text().startswith(
        "# yaml-language-server: $schema=/opt/grctl/share/grctl.schema.json"
    )
    out = packaged_grctld(unpacked, "-c", str(example), "--check-config")
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
    text = (unpacked / "usr/share/doc/grctl/examples/grctl-single-node.yaml").read_text()
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
    http = data.get("engine", {}).get("http", {})
    if "listen" in http:  # the shipped port may be taken by another test on this machine
        http["listen"] = f"127.0.0.1:{free_port()}"
    console = http.get("console", {})
    for key in ("admin_password_file", "viewer_password_file"):  # the console's passwords, made up here
        if key in console:
            secret = target.parent / console[key]
            secret.write_text(f"{key}-of-the-test\n")
            console[key] = str(secret)
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
