"""Worker identity (PROTOCOL.md §4.11): a stable name per set of workflow types, a unique id per process."""

from __future__ import annotations

import hashlib
import secrets
import socket
from collections.abc import Iterable


def worker_name(workflow_types: Iterable[str]) -> str:
    """First 5 hex chars of the MD5 of the sorted types joined with ``|``."""
    joined = "|".join(sorted(workflow_types))
    return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()[:5]


def worker_id(name: str, hostname: str | None = None, suffix: str | None = None) -> str:
    """``w_{name}.{2 random hex}@{hostname}`` (characters a subject cannot hold become ``-``)."""
    host = hostname or socket.gethostname() or "localhost"
    host = "".join("-" if c in "*>" or c.isspace() else c for c in host)
    return f"w_{name}.{suffix or secrets.token_hex(1)}@{host}"
