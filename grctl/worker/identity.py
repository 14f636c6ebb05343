"""Worker identity (docs/protocol.md#identifiers).

- ``worker_name``: ``w_`` + the first 5 hex chars of the MD5 of the sorted workflow types joined with
  ``|`` — stable, identical across processes serving the same set of types;
- ``worker_id``: ``<worker_name>.<random>@<hostname>`` — the protocol's ``w_{hash}.{hex}@{host}`` shape,
  unique per process (6 random hex chars rather than the public SDK's 2, so that many processes on
  one host do not share a command subject).
"""

from __future__ import annotations

import hashlib
import secrets
import socket
from collections.abc import Iterable


def name_hash(workflow_types: Iterable[str]) -> str:
    """First 5 hex chars of the MD5 of the sorted types joined with ``|``."""
    joined = "|".join(sorted(workflow_types))
    return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()[:5]


def worker_name(workflow_types: Iterable[str]) -> str:
    return f"w_{name_hash(workflow_types)}"


def worker_id(name: str, hostname: str | None = None, suffix: str | None = None) -> str:
    """``{name}.{random hex}@{hostname}`` (characters a subject cannot hold become ``-``)."""
    host = hostname or socket.gethostname() or "localhost"
    host = "".join("-" if c in "*>" or c.isspace() else c for c in host)
    return f"{name}.{suffix or secrets.token_hex(3)}@{host}"
