"""Fixtures of the daemon tests (a test module may define its own under the same names)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from daemonkit import Daemon


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """The grctld processes a test started, stopped at its end."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()
