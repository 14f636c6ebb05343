"""The public SDK (grctl-sdk-python from PyPI) in its own Python 3.13 environment, made once and cached
in .cache/, for the interop tests and the benchmark that compares the two workers."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK_VERSION = "0.3.0"


def _runs_313(python: str) -> bool:
    """Does ``python`` start and is it 3.13 or newer? (A pyenv shim may exist yet refuse to run.)"""
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 13))"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def _python313() -> str | None:
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[3-9]*/bin/python")), reverse=True)
    candidates += [found for name in ("python3.13", "python3.14") if (found := shutil.which(name))]
    return next((c for c in candidates if _runs_313(c)), None)


def public_sdk_python() -> str | None:
    """The interpreter of a virtual environment holding the public SDK; None without a Python 3.13."""
    base = _python313()
    if base is None:
        return None
    venv = ROOT / ".cache" / f"public-sdk-{SDK_VERSION}"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"grctl-sdk-python=={SDK_VERSION}"],
                       check=True)
        (venv / ".ready").touch()
    return str(python)


def public_env(nats_url: str) -> dict[str, str]:
    """The environment of a public SDK program: none of ours on its path, NATS where that SDK reads it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["ENGINE_NATS_SERVERS"] = json.dumps([nats_url])
    env["PYTHONUNBUFFERED"] = "1"
    return env
