"""packaging/vendor.lock pins every distribution a fresh install of grctl brings in, so a runtime
dependency added to pyproject.toml cannot break the offline package builds unnoticed, and nothing
else but the build-only tools, since the builds install every other pin; packaging/vendor.sh keeps
packaging/vendor to exactly the pinned files.

The closure is walked over the installed distributions' metadata, from pyproject.toml's own
dependency list, with markers evaluated for the packages' target (CPython 3.11 on Linux x86_64)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import threading
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from support.pkgkit import fetch_vendor

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "packaging" / "vendor.lock"
VENDOR_SH = ROOT / "packaging" / "vendor.sh"
# The interpreter the packages run on (Debian 12's and the RPM build's python3), on x86_64 Linux;
# Marker.evaluate fills in the rest from the running interpreter.
TARGET: dict[str, str] = {
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)\s+--hash=sha256:[0-9a-f]{64}\s*$")


def locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = PIN.match(line)
            assert match, f"vendor.lock: not a hash-pinned requirement: {line!r}"
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**TARGET, "extra": extra}) for extra in extras or {""})


def runtime_closure() -> dict[str, list[Requirement]]:
    """Every distribution a fresh install of grctl installs, with the requirements naming it."""
    roots = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pending = [(Requirement(text), "pyproject.toml") for text in roots]
    needed: dict[str, list[Requirement]] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        req, wanted_by = pending.pop()
        if not applies(req, set()):
            continue
        name = canonicalize_name(req.name)
        needed.setdefault(name, []).append(req)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            raise AssertionError(
                f"{req} (wanted by {wanted_by}) is not installed: reinstall with pip install -e '.[test]'"
            ) from None
        for text in dist.requires or []:
            sub = Requirement(text)
            if applies(sub, set(req.extras)):
                sub.marker = None
                pending.append((sub, name))
    return needed


def test_every_runtime_distribution_is_pinned_in_vendor_lock() -> None:
    pins = locked()
    needed = runtime_closure()
    assert {"aiohttp", "jinja2", "nats-py"} <= needed.keys()  # the walk does reach the dependencies
    missing = sorted(needed.keys() - pins.keys())
    assert not missing, f"packaging/vendor.lock lacks {missing}: pin them (with --hash) and run vendor.sh"
    unsatisfied = [
        f"{req} (locked {pins[name]})"
        for name, reqs in needed.items()
        for req in reqs
        if not req.specifier.contains(pins[name], prereleases=True)
    ]
    assert not unsatisfied, f"packaging/vendor.lock pins versions the requirements exclude: {unsatisfied}"


def vendor_sh(*args: str, script: Path = VENDOR_SH) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(script), *args], capture_output=True, text=True, timeout=60)


def test_the_installed_pins_are_exactly_the_runtime_closure() -> None:
    """make-tree.sh installs ``vendor.sh --requirements`` with --require-hashes: every line hash-pinned,
    and neither a build-only tool nor anything grctl does not need ends up in the package."""
    lines = vendor_sh("--requirements").stdout.splitlines()
    assert lines and all(PIN.match(line) for line in lines), lines
    installed = {canonicalize_name(line.split("==", 1)[0]) for line in lines}
    assert installed == runtime_closure().keys()
    build_only = locked().keys() - installed
    assert build_only == {"setuptools", "wheel", "packaging"}
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert {canonicalize_name(Requirement(text).name) for text in build_system} <= build_only


def fake_vendor(tmp_path: Path, files: dict[str, bytes], build_only: str = "") -> Path:
    """A copy of vendor.sh next to a lock pinning ``files`` (written into its vendor directory)."""
    packaging = tmp_path / "packaging"
    (packaging / "vendor").mkdir(parents=True)
    shutil.copy(VENDOR_SH, packaging / "vendor.sh")
    lines = [f"# build-only: {build_only}"]
    for name, data in files.items():
        (packaging / "vendor" / name).write_bytes(data)
        dist, version = name.removesuffix(".tar.gz").split("-")[:2]
        lines.append(f"{dist}=={version} --hash=sha256:{hashlib.sha256(data).hexdigest()}")
    (packaging / "vendor.lock").write_text("\n".join(lines) + "\n")
    return packaging / "vendor.sh"


def test_vendor_check_rejects_any_file_the_lock_does_not_pin(tmp_path: Path) -> None:
    script = fake_vendor(tmp_path, {"alpha-1.0-py3-none-any.whl": b"alpha 1", "beta-2.0.tar.gz": b"beta 2"})
    vendor = tmp_path / "packaging" / "vendor"
    (vendor / ".gitignore").write_text("*\n")  # hidden files are not distributions
    assert vendor_sh("--check", script=script).returncode == 0
    # a newer wheel dropped in beside the pinned one: the builds refuse to start
    (vendor / "alpha-1.1-py3-none-any.whl").write_bytes(b"alpha 1.1")
    checked = vendor_sh("--check", script=script)
    assert checked.returncode == 1 and "does not pin" in checked.stderr
    assert "alpha-1.1-py3-none-any.whl" in checked.stderr
    # the fetch step removes it (nothing is missing, so nothing is downloaded)
    fetched = vendor_sh(script=script)
    assert fetched.returncode == 0, fetched.stderr
    assert sorted(p.name for p in vendor.iterdir()) == [".gitignore", "alpha-1.0-py3-none-any.whl",
                                                         "beta-2.0.tar.gz"]
    # a pinned name with other content is both missing and not pinned
    (vendor / "beta-2.0.tar.gz").write_bytes(b"beta 2, altered")
    checked = vendor_sh("--check", script=script)
    assert checked.returncode == 1
    assert "lacks pinned files" in checked.stderr and "beta==2.0" in checked.stderr


def test_vendor_requirements_leave_out_the_build_only_pins(tmp_path: Path) -> None:
    script = fake_vendor(tmp_path, {"alpha-1.0-py3-none-any.whl": b"a", "tool-3.0-py3-none-any.whl": b"t",
                                     "beta-2.0.tar.gz": b"b"},
                         build_only="tool")
    lines = vendor_sh("--requirements", script=script).stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["alpha==1.0", "beta==2.0"]


def test_the_packaging_tests_run_vendor_sh_one_at_a_time(tmp_path: Path) -> None:
    """pytest-xdist workers each build packages and so each run the vendor step first; on a clean clone
    they would download into the same directory together. A stand-in for vendor.sh fails when another
    one runs in the same directory; four at once all succeed."""
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    script = tmp_path / "vendor.sh"
    script.write_text('mkdir "$1/.running" 2>/dev/null || { echo "two at once" >&2; exit 1; }\n'
                      'sleep 0.3; rmdir "$1/.running"\n')
    failures: list[BaseException] = []

    def fetch() -> None:
        try:
            fetch_vendor(vendor, script)
        except BaseException as error:  # an AssertionError from the worker thread, reported below
            failures.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
