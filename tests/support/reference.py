"""The public grctl reference material used as test inputs: the public SDK's example programs and its
documentation pages. Found through ``GRCTL_REFERENCE_DIR`` (default: ``../shared/reference`` beside the
repository); tests that need it skip, saying why, when it is absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = "grctl-sdk-python-0.3.0-examples"
DEVELOP_DOCS = "grctl-docs/develop"


def reference_dir() -> Path:
    return Path(os.environ.get("GRCTL_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))


def require_reference(relative: str) -> Path:
    """The reference folder ``relative``; skips the test (printing the reason) when it is missing."""
    path = reference_dir() / relative
    if not path.is_dir():
        reason = f"reference material not found: {path} (set GRCTL_REFERENCE_DIR)"
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return path
