"""How the console writes values: payloads as JSON, durations and ages short (``1m05s``, ``3m ago``).
The templates escape whatever these return."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec

from grctl import settings
from grctl.models.common import RunInfo


def pretty(value: Any) -> str:
    """A payload as indented JSON (what msgpack carries but JSON does not is converted)."""
    return json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False)


def details(message: Any) -> str:
    """A history event's message as compact JSON, cut to ``CONSOLE_DETAILS_WIDTH`` characters."""
    text = json.dumps(msgspec.to_builtins(message), ensure_ascii=False, separators=(", ", ": "))
    width = settings.CONSOLE_DETAILS_WIDTH
    return text if len(text) <= width else text[: width - 1] + "…"


def seconds(value: float) -> str:
    """``850ms``, ``4.2s``, ``3m05s``, ``2h10m``, ``3d04h``."""
    value = max(0.0, value)
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.3g}s"
    if value < 3600:
        return f"{int(value // 60)}m{int(value % 60):02d}s"
    if value < 86400:
        return f"{int(value // 3600)}h{int(value % 3600 // 60):02d}m"
    return f"{int(value // 86400)}d{int(value % 86400 // 3600):02d}h"


def age(when: datetime | None, now: datetime) -> str:
    """``3m05s ago``: how long before ``now``."""
    return "-" if when is None else f"{seconds((now - when).total_seconds())} ago"


def took(info: RunInfo, now: datetime) -> str:
    """How long the run has taken: until it ended, or until ``now``."""
    start = info.started_at or info.created_at
    return seconds(((info.completed_at or now) - start).total_seconds())
