"""The .deb's maintainer scripts, run by dpkg in a root (dpkg --root, scripts chrooted into it):
install, upgrade, remove, reinstall and purge, with systemd present and a policy-rc.d that records
what deb-systemd-invoke asks for; and install, remove and purge into an image root, where systemd is
not running."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from support.pkgkit import OverlayRoot, need

pytestmark = pytest.mark.timeout(600)

UNIT = "grctld.service"
WANTS = "etc/systemd/system/multi-user.target.wants/grctld.service"
DSH_STATE = "var/lib/systemd/deb-systemd-helper-enabled/grctld.service.dsh-also"  # what enable recorded
POLICY = """#!/bin/sh
# records each request and refuses it (101): nothing is started in the test's root
echo "$*" >> /var/log/policy-rc.d.log
exit 101
"""


def next_version(deb: Path, out: Path) -> Path:
    """The same package as the next Debian revision (an upgrade)."""
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: (.*)-(\d+)$", lambda m: f"Version: {m[1]}-{int(m[2]) + 1}",
                              control.read_text(), flags=re.MULTILINE))
    newer = out / "grctl_next.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(tree), str(newer)], check=True,
                   capture_output=True)
    return newer


class Dpkg:
    def __init__(self, root: OverlayRoot) -> None:
        self.root = root

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.root.run("dpkg", f"--root={self.root.path}", "--force-unsafe-io", *args)

    def requests(self) -> list[str]:
        """What was asked of policy-rc.d since the last call (e.g. "grctld.service start")."""
        log = "var/log/policy-rc.d.log"
        said = self.root.read(log).splitlines() if self.root.exists(log) else []
        self.root.run("rm", "-f", str(self.root.path / log))
        return [line for line in said if UNIT in line]


def dpkg_root(tmp_path: Path, booted: bool = True) -> Dpkg:
    """dpkg on an OverlayRoot whose policy-rc.d records every request."""
    need("dpkg", "chroot")
    root = OverlayRoot(tmp_path, booted=booted)
    policy = root.upper("usr") / "sbin" / "policy-rc.d"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(POLICY)
    policy.chmod(0o755)
    return Dpkg(root)


def test_install_upgrade_remove_reinstall_purge(deb: Path, tmp_path: Path) -> None:
    dpkg = dpkg_root(tmp_path)
    root = dpkg.root
    newer = next_version(deb, tmp_path)

    # install: the user and directories exist, the unit is enabled and asked to start; no
    # configuration file, so the unit's ExecCondition keeps it from running anything
    dpkg("-i", str(deb))
    assert re.search(r"^grctl:x:\d+:\d+:", root.read("etc/passwd"), re.MULTILINE)
    assert root.chroot("stat", "-c", "%U %a", "/var/lib/grctl").stdout.split() == ["grctl", "750"]
    assert root.chroot("stat", "-c", "%U %a", "/etc/grctl/credentials").stdout.split() == ["root", "700"]
    assert root.exists(WANTS)
    assert dpkg.requests() == [f"{UNIT} start"]
    assert not root.exists("etc/grctl/grctl.yaml")
    version = root.chroot("/usr/bin/grctld", "--version")
    assert version.stdout.startswith("grctld ")
    owned = dpkg("-L", "grctl").stdout.splitlines()
    assert any(line.endswith(".cpython-311.pyc") for line in owned)  # bytecode belongs to the package

    # an administrator's "disable" survives an upgrade; the upgrade restarts the service
    root.chroot("systemctl", "--root=/", "disable", UNIT)
    assert not root.exists(WANTS)
    dpkg("-i", str(newer))
    assert not root.exists(WANTS)
    assert dpkg.requests() == [f"{UNIT} restart"]
    root.chroot("systemctl", "--root=/", "enable", UNIT)

    # remove: stopped; nothing left under /opt; the state and the conffile stay
    (root.path / "var/lib/grctl/nats").mkdir()
    (root.path / "var/lib/grctl/nats/stream.blk").write_text("runs")
    dpkg("--remove", "grctl")
    assert dpkg.requests() == [f"{UNIT} stop"]
    assert not root.exists("opt/grctl")
    assert root.exists("var/lib/grctl/nats/stream.blk") and root.exists("etc/default/grctld")

    # reinstall after remove (dpkg passes the removed version, as for an upgrade): enabled again, and
    # "restart", which starts a stopped unit (not "try-restart", which would leave it stopped)
    dpkg("-i", str(newer))
    assert root.exists(WANTS)
    assert dpkg.requests() == [f"{UNIT} restart"]

    # purge: a warning, and the state, the conffile and the unit's links are gone
    purged = dpkg("--purge", "grctl")
    assert "purge deletes /var/lib/grctl" in purged.stderr
    for gone in ("var/lib/grctl", "var/log/grctl", "etc/default/grctld", "opt/grctl", WANTS, DSH_STATE):
        assert not root.exists(gone), gone
    assert "grctl" not in dpkg("-l").stdout.split()


def test_install_into_an_image_root_enables_without_asking_systemd(deb: Path, tmp_path: Path) -> None:
    """Installing into an image or a chroot (no /run/systemd/system: systemd does not run there): the
    user and the directories are made and the unit is enabled as the policy says, so the image's first
    boot starts it; nothing is asked to start or stop, and remove and purge work the same way."""
    dpkg = dpkg_root(tmp_path, booted=False)
    root = dpkg.root
    assert root.exists("run") and not root.exists("run/systemd")
    dpkg("-i", str(deb))
    assert re.search(r"^grctl:x:\d+:\d+:", root.read("etc/passwd"), re.MULTILINE)
    assert root.chroot("stat", "-c", "%U %a", "/var/lib/grctl").stdout.split() == ["grctl", "750"]
    assert root.exists(WANTS)
    assert dpkg.requests() == []
    dpkg("--remove", "grctl")
    assert dpkg.requests() == [] and not root.exists("opt/grctl")
    dpkg("--purge", "grctl")
    assert dpkg.requests() == []
    for gone in ("var/lib/grctl", WANTS, DSH_STATE):
        assert not root.exists(gone), gone
