"""The JSON Schema of grctl.yaml (shipped in the wheel) and validation with readable messages.

jsonschema's own messages are written for JSON people; these are rewritten for someone editing a YAML
file: unknown keys get "did you mean", type errors say what was expected in YAML words, and formats
(NATS URLs, durations, module names) explain what a good value looks like.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, cast
from urllib.parse import urlsplit

from jsonschema import Draft7Validator, FormatChecker, ValidationError

from grctl.daemon.yamlmarks import Path
from grctl.models.schedule_clock import check_cron, zone
from grctl.nats.subjects import invalid_token_reason
from grctl.ops.listen import parse_listen

SCHEMA_RESOURCE = ("grctl", "schemas/grctl.schema.json")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_MODULE_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")
_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


@cache
def load_schema() -> dict[str, Any]:
    package, name = SCHEMA_RESOURCE
    return json.loads(resources.files(package).joinpath(name).read_text(encoding="utf-8"))


def parse_duration(value: str | float | int) -> float:
    """``"30s"``, ``"2m"``, ``"1m30s"``, ``"250ms"``, ``"1h"`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is not a valid duration (negative)")
        return float(value)
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError('\'\' is not a valid duration (use e.g. "30s", "2m" or a number of seconds)')
    try:
        return parse_duration(float(text))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(
            f'{value!r} is not a valid duration (use e.g. "30s", "2m", "1m30s", "500ms" '
            "or a number of seconds)"
        )
    return total


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 time with its UTC offset ("2027-01-01T00:00:00Z")."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValueError(f"{value!r} is not a time with a UTC offset (e.g. 2027-01-01T00:00:00Z or "
                         "2027-01-01T02:00:00+01:00)")
    return when


def check_schedule_id(value: str) -> None:
    reason = invalid_token_reason(value)
    if reason:
        raise ValueError(f"schedule id {value!r} {reason}")


def parse_sync_interval(value: str | float | int) -> float | None:
    """``"always"`` → None (fsync after every write), else a positive duration in seconds."""
    if isinstance(value, str) and value.strip().lower() == "always":
        return None
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ValueError(f'{value!r} is not a valid sync interval (use "always", or a duration such as "2m")')
    return seconds


def parse_size(value: str | int) -> int:
    """``"512MiB"``, ``"10GB"``, ``"1.5GiB"`` or a number of bytes → bytes (KB, MB... are powers of 1000;
    KiB, MiB... of 1024)."""
    bad = (f"{value!r} is not a valid size (use e.g. \"512MiB\", \"10GB\" or a number of bytes; "
           "KB/MB/GB/TB count in 1000s, KiB/MiB/GiB/TiB in 1024s)")
    if isinstance(value, bool):
        raise ValueError(bad)
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{value!r} is not a valid size (at least 1 byte)")
        return value
    found = _SIZE.match(value.strip())
    if not found:
        raise ValueError(bad)
    size = int(float(found.group(1)) * _SIZE_UNITS[(found.group(2) or "").lower()])
    if size < 1:
        raise ValueError(f"{value!r} is not a valid size (at least 1 byte)")
    return size


FOREVER = ("forever", "never")


def parse_retention(value: str | float | int) -> float:
    """How long finished runs are kept, in seconds: a duration, or "forever" (also 0), which is 0."""
    if isinstance(value, str) and value.strip().lower() in FOREVER:
        return 0.0
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f'{value!r} is not a valid retention (use e.g. "7d", "12h", "30m", a number of '
                         'seconds, or "forever")') from None


def check_nats_url(value: str) -> None:
    """Raise ValueError unless ``value`` is a URL nats-py can connect to."""
    bad = f"{value!r} is not a valid NATS URL"
    text = value.strip()
    if "://" not in text:
        if "/" in text or not text:
            raise ValueError(f"{bad} (expected e.g. nats://host:4222)")
        text = "nats://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{bad} ({exc})") from exc
    if parts.scheme not in NATS_SCHEMES:
        raise ValueError(f"{bad} (the scheme must be one of {', '.join(NATS_SCHEMES)})")
    host = parts.hostname or ""
    if not host or not (_HOST.match(host) or _is_ipv6(host)):
        raise ValueError(f"{bad} (no valid host name)")
    if port == 0:
        raise ValueError(f"{bad} (port 0)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{bad} (unexpected path or query)")


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    def text_format(name: str, parse: Callable[[str], object]) -> None:
        """A format whose values, when they are strings, must parse (numbers are checked by type)."""

        def check(value: object) -> bool:
            if isinstance(value, str):
                parse(value)
            return True

        checker.checks(name, raises=ValueError)(check)

    for name, parse in (("duration", parse_duration), ("retention", parse_retention),
                        ("nats-url", check_nats_url), ("listen", parse_listen), ("cron", check_cron),
                        ("timezone", zone), ("timestamp", parse_timestamp),
                        ("schedule-id", check_schedule_id)):
        text_format(name, parse)

    @checker.checks("sync-interval", raises=ValueError)
    def _sync_interval(value: object) -> bool:
        parse_sync_interval(value)  # type: ignore[arg-type]
        return True

    @checker.checks("size", raises=ValueError)
    def _size(value: object) -> bool:
        if isinstance(value, str | int) and not isinstance(value, bool):
            parse_size(value)
        return True

    @checker.checks("module-ref", raises=ValueError)
    def _module_ref(value: object) -> bool:
        if isinstance(value, str) and not _MODULE_REF.match(value):
            raise ValueError(
                f"{value!r} is not a module name (expected 'package.module' or 'package.module:attribute')"
            )
        return True

    return checker


@cache
def validator() -> Draft7Validator:
    return Draft7Validator(load_schema(), format_checker=_format_checker())


@cache
def key_homes() -> dict[str, list[str]]:
    """Every key name the schema knows → the dotted sections it belongs to ('' for the top level)."""
    homes: dict[str, list[str]] = {}

    def visit(schema: dict[str, Any], prefix: str) -> None:
        for name, sub in schema.get("properties", {}).items():
            homes.setdefault(name, []).append(prefix)
            visit(sub, f"{prefix}.{name}" if prefix else name)

    visit(load_schema(), "")
    return homes


def describe(value: Any) -> str:
    """A YAML reader's name for a value's type, with the value when short."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) <= 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _expected(schema: dict[str, Any]) -> str:
    if schema.get("format") == "duration":
        return 'a duration such as "30s" or "2m", or a number of seconds'
    if schema.get("format") == "sync-interval":
        return '"always" or a duration such as "2m"'
    if schema.get("format") == "size":
        return 'a size such as "512MiB" or "10GB", or a number of bytes'
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    return " or ".join(_TYPE_WORDS.get(t, t) for t in names)


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_key_hint(key: str, allowed: list[str], section: str) -> str:
    hint = did_you_mean(key, allowed)
    if hint:
        return hint
    homes = [h for h in key_homes().get(key, []) if h != section]
    if homes:
        where = homes[0]
        return f" (it belongs under '{where}')" if where else " (it belongs at the top level)"
    return f" (known keys: {', '.join(sorted(allowed))})" if allowed else ""


def problems(data: Any) -> Iterator[tuple[Path, str, bool]]:
    """(path, message, at_key) for each schema violation; at_key means the error is about a key name."""
    for error in sorted(validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        yield from _translate(error)


def _translate(error: ValidationError) -> Iterator[tuple[Path, str, bool]]:
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = list(schema.get("properties", {}))
        section = ".".join(str(p) for p in path)
        for key in value:
            if key not in allowed:
                yield (*path, key), f"unknown key '{key}'{_unknown_key_hint(key, allowed, section)}", True
        return
    if kind == "type":
        yield path, f"expected {_expected(schema)}, got {describe(value)}", False
    elif kind == "format":
        cause = error.cause
        if "propertyNames" in error.relative_schema_path:  # a key of the mapping, not a value
            yield (*path, str(value)), str(cause) if cause else error.message, True
            return
        yield path, str(cause) if cause else error.message, False
    elif kind == "enum":
        choices = [str(c) for c in cast(list[Any], error.validator_value)]
        listed = ", ".join(repr(c) for c in choices)
        hint = did_you_mean(str(value).lower(), choices) if isinstance(value, str) else ""
        yield path, f"{value!r} is not one of {listed}{hint}", False
    elif kind in ("minimum", "exclusiveMinimum"):
        yield path, f"must be at least {error.validator_value}, got {value!r}", False
    elif kind in ("maximum", "exclusiveMaximum"):
        yield path, f"must be at most {error.validator_value}, got {value!r}", False
    elif kind == "minItems":
        yield path, "must list at least one entry", False
    elif kind == "uniqueItems":
        yield path, "lists the same entry twice", False
    elif kind == "minLength":
        least = cast(int, error.validator_value)
        yield path, "must not be empty" if least <= 1 else f"too short: at least {least} characters", False
    elif kind == "required":
        required = cast(list[str], error.validator_value)
        missing = [k for k in required if not isinstance(value, dict) or k not in value]
        for key in missing:
            yield path, f"missing required key '{key}'", False
    else:
        yield path, error.message, False
