"""Helpers and session fixtures of the packaging tests: the packages, built offline once per session,
and package managers run in a root made of overlays of this machine's /usr, /etc and dpkg database
(writes stay in the test's directories; the maintainer scripts run chrooted into it, as dpkg --root
and rpm --root do)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Overlays of the host: each (host path, path in the root). /dev and /proc are bound as they are:
# scripts write to /dev/null, and systemctl looks at /proc to see that it runs in a chroot.
OVERLAYS = (("/usr", "usr"), ("/etc", "etc"), ("/var/lib/dpkg", "var/lib/dpkg"))
BINDS = (("/dev", "dev"), ("/proc", "proc"))
MERGED_USR = ("bin", "sbin", "lib", "lib64")


def need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs them)")


def fetch_vendor(directory: Path = ROOT / "packaging" / "vendor", script: Path | None = None) -> None:
    """packaging/vendor.sh, fetching into ``directory``, by one process at a time: each packaging test
    file has its own build fixture, so several pytest-xdist workers get here at once on a clean clone,
    and two downloads into the same directory would each see the other's partial files. The lock is
    flock(2) on the directory itself (no lock file for vendor.sh to see), held until vendor.sh ends."""
    script = script or ROOT / "packaging" / "vendor.sh"
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        done = subprocess.run(["sh", str(script), str(directory)], capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        os.close(fd)  # releases the lock


def build(script: str, out: Path) -> list[Path]:
    """packaging/SCRIPT into ``out`` with no network (a fresh network namespace): the files it made."""
    need("unshare")
    fetch_vendor()
    done = subprocess.run(["unshare", "-n", "sh", str(ROOT / "packaging" / script), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    paths = [Path(line) for line in done.stdout.splitlines()]
    assert paths and all(path.is_file() for path in paths), done.stdout
    return paths


def one(paths: list[Path], suffix: str) -> Path:
    """The one file of ``paths`` whose name ends with ``suffix``."""
    found = [path for path in paths if path.name.endswith(suffix)]
    assert len(found) == 1, (suffix, paths)
    return found[0]


def lintian(*targets: Path) -> list[str]:
    """lintian's errors and warnings on ``targets`` (overridden tags are not reported). lintian must have
    run: it exits 1 exactly when it reports an error or a warning (--fail-on), 0 when it reports none,
    and anything else (a crash, a file it cannot read) fails the test, output or not."""
    need("lintian")
    done = subprocess.run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0",
                           *map(str, targets)], capture_output=True, text=True, timeout=600)
    findings = [line for line in done.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert done.returncode == (1 if findings else 0), (
        f"lintian exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return findings


def uncommented_overrides(text: str) -> list[str]:
    """The lines of a lintian overrides file that are neither comments nor blank and do not directly
    follow a comment line: each override says why, in the comment above it."""
    lines = text.splitlines()
    return [line for before, line in zip(["", *lines], lines, strict=False)
            if line.strip() and not line.lstrip().startswith("#") and not before.lstrip().startswith("#")]


def tree_digests(root: Path, under: str) -> dict[str, str]:
    """SHA-256 of every regular file (and the target of every link) below ``root/under``."""
    digests = {}
    for path in sorted((root / under).rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            digests[name] = "-> " + os.readlink(path)
        elif path.is_file():
            digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


class OverlayRoot:
    """A root directory for ``dpkg --root``/``rpm --root``: the host's /usr, /etc and dpkg database
    as overlays whose writes land in ``state``; everything else empty. ``booted``: the root looks
    like a running system's (/run/systemd/system exists, so maintainer scripts talk to systemd);
    without it, like an image or chroot being installed, where they must not."""

    def __init__(self, base: Path, booted: bool = True) -> None:
        self.path = base / "root"
        self.state = base / "state"
        directories = ["var/log", "var/lib", "tmp", "dev", "proc", "run"]
        if booted:
            directories.append("run/systemd/system")
        for directory in directories:
            (self.path / directory).mkdir(parents=True, exist_ok=True)
        for name in MERGED_USR:
            if os.path.islink(f"/{name}"):
                (self.path / name).symlink_to(os.readlink(f"/{name}"))
        for _, inside in OVERLAYS:
            (self.path / inside).mkdir(parents=True, exist_ok=True)
            key = inside.replace("/", "_")
            (self.state / f"{key}.up").mkdir(parents=True, exist_ok=True)
            (self.state / f"{key}.work").mkdir(parents=True, exist_ok=True)

    def upper(self, inside: str) -> Path:
        """Where writes to ``inside`` (one of the overlays) land: to put files into the root."""
        return self.state / f"{inside.replace('/', '_')}.up"

    def run(self, *command: str, check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """``command`` in a private mount namespace where the root's overlays are mounted."""
        need("unshare")
        mounts = [
            f"mount -t overlay overlay -o lowerdir={host},upperdir={self.upper(inside)},"
            f"workdir={self.state / (inside.replace('/', '_') + '.work')} {self.path / inside}"
            for host, inside in OVERLAYS
        ] + [f"mount --rbind {host} {self.path / inside}" for host, inside in BINDS]
        script = " && ".join(mounts) + ' && exec "$@"'
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *command],
            capture_output=True, text=True, timeout=300, env=env,
        )
        if check:
            assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done

    def exists(self, inside: str) -> bool:
        """Whether ``inside`` (a path in the root, links not followed) exists now."""
        return self.run("test", "-e", str(self.path / inside), "-o", "-L", str(self.path / inside),
                        check=False).returncode == 0

    def read(self, inside: str) -> str:
        return self.run("cat", str(self.path / inside)).stdout

    def chroot(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("chroot", str(self.path), *command, check=check)


@pytest.fixture(scope="session")
def deb_build(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """build-deb.sh's files: the source package, and the .deb built from it unpacked afresh."""
    need("dpkg-buildpackage", "dpkg-source", "dh", "dpkg-deb")
    return build("build-deb.sh", tmp_path_factory.mktemp("deb"))


@pytest.fixture(scope="session")
def deb(deb_build: list[Path]) -> Path:
    return one(deb_build, ".deb")


@pytest.fixture(scope="session")
def deb_source(deb_build: list[Path]) -> Path:
    """The source package's .changes (next to its .dsc and archives)."""
    return one(deb_build, "_source.changes")


@pytest.fixture(scope="session")
def rpm_build(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    need("rpmbuild", "rpm")
    return build("build-rpm.sh", tmp_path_factory.mktemp("rpm"))


@pytest.fixture(scope="session")
def rpm(rpm_build: list[Path]) -> Path:
    return one([path for path in rpm_build if not path.name.endswith(".src.rpm")], ".rpm")


@pytest.fixture(scope="session")
def srpm(rpm_build: list[Path]) -> Path:
    return one(rpm_build, ".src.rpm")


@pytest.fixture(scope="session")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root
