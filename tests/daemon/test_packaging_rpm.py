"""The RPM: built offline with its SRPM from packaging/rpm/grctl.spec without systemd-rpm-macros (the
fallbacks), only with a Python 3.11, rpmlint-clean but for the commented filters, with the right
requirements, the same /opt tree as the .deb, and installed, upgraded to the next release, downgraded
back and erased in a root (rpm --root, scriptlets chrooted into it)."""

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
WANTS = "etc/systemd/system/multi-user.target.wants/grctld.service"


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


def next_release(rpm: Path, out: Path) -> Path:
    """The same package as the next release (an upgrade), without building it again: grctl.spec with
    the release bumped and a changelog entry, whose %install unpacks the built package's files instead
    of running make-tree.sh; so the scriptlets, requirements and file list are the spec's own."""
    need("rpmbuild", "rpm2cpio", "cpio")
    version, release = query(rpm, "--qf", "%{VERSION} %{RELEASE}")[0].split()
    following = int(release.split(".")[0]) + 1
    spec = re.sub(r"^(Release:\s*)\d+", rf"\g<1>{following}", SPEC.read_text(), count=1, flags=re.M)
    spec = re.sub(r"^(Source\d+:|%setup ).*\n", "", spec, flags=re.M)  # nothing to unpack
    unpack = f"cd %{{buildroot}} && rpm2cpio {rpm} | cpio -idm --quiet"
    spec = re.sub(r"^%install\n.*?\n\n", lambda _: f"%install\n{unpack}\n\n", spec, count=1,
                  flags=re.M | re.S)
    entry = f"- {version}-{following}\n- The same files, repackaged as the next release.\n"
    spec = re.sub(r"^(%changelog\n)(\* \w+ \w+ \d+ \d+ [^>]*> )",
                  lambda m: f"{m[1]}{m[2]}{entry}{m[2]}", spec, count=1, flags=re.M)
    assert f"Release:        {following}%" in spec and unpack in spec and "./packaging/" not in spec
    (out / "SPECS").mkdir(parents=True)
    (out / "SPECS" / "grctl.spec").write_text(spec)
    # on a host whose packages rpm does not know (Debian), the build requirements cannot be checked
    known = subprocess.run(["rpm", "-q", "--whatprovides", "python3"], capture_output=True).returncode == 0
    # the payload is already stripped and compiled (no brp scripts again), and is only ever installed
    # here (the lightest compression): 3 s instead of 10
    quick = ["--define", "__os_install_post %{nil}", "--define", "_binary_payload w1.gzdio"]
    done = subprocess.run(["rpmbuild", "-bb", *([] if known else ["--nodeps"]), *quick, "--define",
                           f"_topdir {out}", str(out / "SPECS" / "grctl.spec")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return next((out / "RPMS").glob("*/*.rpm"))


def test_rpm_installs_upgrades_downgrades_and_erases_in_a_root(rpm: Path, tmp_path: Path) -> None:
    """In an image root (systemd not running, so systemctl works on the unit files): install enables
    the unit as the presets say; an upgrade to the next release and a downgrade back (each runs %preun
    and %postun with "1 left" and %post with "2 installed") keep an enabled unit enabled and a disabled
    one disabled; erase disables it and removes every file."""
    need("rpm", "chroot")
    newer = next_release(rpm, tmp_path / "next")
    root = OverlayRoot(tmp_path, booted=False)
    preset = root.upper("etc") / "systemd" / "system-preset" / "50-grctl-test.preset"
    preset.parent.mkdir(parents=True)
    preset.write_text("enable grctld.service\n")  # whatever the host's presets say
    rpm_root = ["rpm", f"--root={root.path}", "--nodeps"]  # this machine's packages are not rpm's
    root.run("rpm", f"--root={root.path}", "--initdb")

    def installed() -> list[str]:
        return root.run("rpm", f"--root={root.path}", "-q", "grctl", check=False).stdout.split()

    root.run(*rpm_root, "-i", str(rpm))
    assert re.search(r"^grctl:x:\d+:\d+:", root.read("etc/passwd"), re.MULTILINE)  # %post's sysusers
    assert root.chroot("stat", "-c", "%U", "/var/lib/grctl").stdout.strip() == "grctl"
    assert root.chroot("/usr/bin/grctld", "--version").stdout.startswith("grctld ")
    assert root.exists(WANTS)  # %post's preset, on first installation
    old = installed()

    root.run(*rpm_root, "-U", str(newer))  # a real upgrade: no --replacepkgs
    assert installed() == [newer.name.removesuffix(".rpm")] != old
    assert root.exists(WANTS) and root.exists("opt/grctl/bin/grctld")  # not disabled by the old %preun

    root.chroot("systemctl", "--root=/", "disable", "grctld.service")
    root.run(*rpm_root, "-U", "--oldpackage", str(rpm))
    assert installed() == old
    assert not root.exists(WANTS)  # the administrator's choice: %post presets only a first install

    root.run(*rpm_root, "-e", "grctl")
    assert installed()[-1:] == ["installed"]  # "package grctl is not installed"
    assert not root.exists("opt/grctl") and not root.exists("usr/bin/grctld")
