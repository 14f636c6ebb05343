"""packaging/vendor.lock pins every distribution a fresh install of grctl brings in, so a runtime
dependency added to pyproject.toml cannot break the offline package builds unnoticed.

The closure is walked over the installed distributions' metadata, from pyproject.toml's own
dependency list, with markers evaluated for the packages' target (CPython 3.11 on Linux x86_64)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "packaging" / "vendor.lock"
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
