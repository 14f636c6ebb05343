"""The RPM: built offline with its SRPM from packaging/rpm/grctl.spec without systemd-rpm-macros (the
fallbacks), only with a Python 3.11, rpmlint-clean but for the commented filters, with the right
requirements, the same /opt tree as the .deb, and installed, upgraded and erased in a root (rpm
--root, scriptlets chrooted into it)."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import pytest
from daemonkit import ROOT
from support.pkgkit import OverlayRoot, need, tree_digests

pytestmark = pytest.mark.timeout(600)
SPEC = ROOT / "packaging" / "rpm" / "grctl.spec"
LINTRC = ROOT / "packaging" / "rpm" / "rpmlint.toml"


def query(rpm: Path, *what: str) -> list[str]:
    out = subprocess.run(["rpm", "-qp", *what, str(rpm)], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_rpm_srpm_and_spec_are_rpmlint_clean_but_for_commented_filters(rpm: Path, srpm: Path) -> None:
    need("rpmlint")
    for target in (rpm, srpm, SPEC):
        out = subprocess.run(["rpmlint", "-c", str(LINTRC), str(target)], capture_output=True, text=True,
                             timeout=300)
        findings = [line for line in out.stdout.splitlines() if re.search(r": [EW]: ", line)]
        assert findings == [], "\n".join(findings)
        assert " 0 errors, 0 warnings" in out.stdout, out.stdout
    # every filter follows a comment that gives its reason
    lines = LINTRC.read_text().split("Filters = [", 1)[1].splitlines()
    for before, line in itertools.pairwise(lines):
        if line.strip().startswith('"'):
            assert before.strip().startswith(("#", '"')), line


def test_srpm_holds_the_spec_and_both_archives(srpm: Path) -> None:
    version = query(srpm, "--qf", "%{VERSION}")[0]
    assert sorted(query(srpm, "--list")) == sorted(
        ["grctl.spec", f"grctl-{version}.tar.gz", f"grctl-vendor-{version}.tar.gz"])


def test_spec_refuses_a_python_other_than_3_11(tmp_path: Path) -> None:
    """The vendored wheels are cp311: with another python3 the build stops at once, saying why,
    instead of pip failing to find wheels."""
    need("rpmspec")
    assert "python(abi) = 3.11" in subprocess.run(["rpmspec", "-q", "--buildrequires", str(SPEC)],
                                                  capture_output=True, text=True, check=True).stdout
    python = tmp_path / "python3.12"
    python.write_text("#!/bin/sh\necho 3.12\n")
    python.chmod(0o755)
    out = subprocess.run(["rpmspec", "-q", "--define", f"__python3 {python}", str(SPEC)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "are for CPython 3.11" in out.stderr, out.stderr


def test_rpm_requirements(rpm: Path) -> None:
    requires = set(query(rpm, "--requires"))
    python = next(r for r in requires if r.startswith("python(abi) = "))
    version = python.split(" = ")[1]
    assert f"/usr/bin/python{version}" in requires  # the interpreter the environment links to
    assert {"libc.so.6()(64bit)", "libgcc_s.so.1()(64bit)"} <= requires  # from the bundled objects
    assert not [r for r in requires if r.startswith("/opt/")]  # nothing the package itself must provide
    provides = set(query(rpm, "--provides"))
    assert not [p for p in provides if ".so" in p]  # the environment's libraries stay private
    info = "\n".join(query(rpm, "--info"))
    assert re.search(r"^URL\s*: https://", info, re.MULTILINE) and "Release     : 4" in info
    assert "- 0.1.0-4" in "\n".join(query(rpm, "--changelog"))[:200]  # the newest entry is this release
    scripts = "\n".join(query(rpm, "--scripts"))
    assert "systemctl --no-reload preset grctld.service" in scripts  # the fallbacks, expanded
    assert "try-restart grctld.service" in scripts and "disable --now grctld.service" in scripts


def test_rpm_holds_the_same_environment_as_the_deb(rpm: Path, unpacked: Path, tmp_path: Path) -> None:
    need("rpm2cpio", "cpio")
    subprocess.run(f"rpm2cpio {rpm} | cpio -idm --quiet", shell=True, cwd=tmp_path, check=True)
    # two independent builds, in different directories at different times: the same bytes
    assert tree_digests(tmp_path, "opt/grctl") == tree_digests(unpacked, "opt/grctl")
    files = set(query(rpm, "--list"))
    assert {"/usr/bin/grctld", "/usr/bin/grctl", "/usr/lib/systemd/system/grctld.service",
            "/usr/lib/sysusers.d/grctl.conf", "/usr/lib/tmpfiles.d/grctl.conf",
            "/etc/default/grctld"} <= files
    assert "/etc/grctl/grctl.yaml" not in files and not [f for f in files if "/.build-id/" in f]
    assert any(f.endswith(".pyc") for f in files)  # bytecode is the package's


def test_rpm_installs_upgrades_and_erases_in_a_root(rpm: Path, tmp_path: Path) -> None:
    need("rpm", "chroot")
    root = OverlayRoot(tmp_path)
    rpm_root = ["rpm", f"--root={root.path}", "--nodeps"]  # this machine's packages are not rpm's
    root.run("rpm", f"--root={root.path}", "--initdb")
    root.run(*rpm_root, "-i", str(rpm))
    assert re.search(r"^grctl:x:\d+:\d+:", root.read("etc/passwd"), re.MULTILINE)  # %post's sysusers
    assert root.chroot("stat", "-c", "%U", "/var/lib/grctl").stdout.strip() == "grctl"
    assert root.chroot("/usr/bin/grctld", "--version").stdout.startswith("grctld ")
    root.run(*rpm_root, "-U", "--replacepkgs", str(rpm))
    assert root.exists("opt/grctl/bin/grctld")
    root.run(*rpm_root, "-e", "grctl")
    assert not root.exists("opt/grctl") and not root.exists("usr/bin/grctld")
