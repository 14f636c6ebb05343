"""Under CI=true a skipped test, or a module skipped at collection, fails the run; an expected failure
and a skip outside CI do not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import pytest

def test_skips() -> None:
    pytest.skip("the tool is not installed")

@pytest.mark.xfail(reason="known")
def test_expected_failure() -> None:
    raise AssertionError

def test_passes() -> None:
    pass
"""


MODULE_SKIP = "import pytest\npytest.skip('absent', allow_module_level=True)\n"


def run_probe(tmp_path: Path, ci: str | None, module_skip: bool = False) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(MODULE_SKIP if module_skip else PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT / "tests")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "support.ci_skips",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )


def test_a_skip_fails_under_ci(tmp_path: Path) -> None:
    out = run_probe(tmp_path, "true")
    assert out.returncode == 1, out.stdout
    assert "skipped under CI=true, which must skip nothing: Skipped: the tool is not installed" in out.stdout
    assert "1 failed, 1 passed, 1 xfailed" in out.stdout, out.stdout
    # a module skipped whole at collection stops the run
    out = run_probe(tmp_path, "true", module_skip=True)
    assert out.returncode != 0 and "must skip nothing: Skipped: absent" in out.stdout, out.stdout


def test_a_skip_is_a_skip_outside_ci(tmp_path: Path) -> None:
    out = run_probe(tmp_path, None)
    assert out.returncode == 0, out.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in out.stdout, out.stdout
