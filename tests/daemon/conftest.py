"""Fixtures of the daemon tests: the packages, built once per session, offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pkgkit import build, need


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("dpkg-buildpackage", "dh", "dpkg-deb")
    return build("build-deb.sh", tmp_path_factory.mktemp("deb"))


@pytest.fixture(scope="session")
def rpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("rpmbuild", "rpm")
    return build("build-rpm.sh", tmp_path_factory.mktemp("rpm"))


@pytest.fixture(scope="session")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root
