"""Conversion of user values to and from the wire (PROTOCOL.md §5.17).

Two conversions are in use and they differ on purpose:

- ``normalize`` / ``encode``: msgpack with a hook for pydantic-style models. Used for inputs, results,
  event payloads and store values; timezone-aware datetimes stay msgpack timestamps.
- ``to_builtins``: msgspec's to-builtins with the same hook. Used for task arguments and task results
  (and so for operation ids); datetimes become RFC 3339 strings, bytes base64 strings.

Pydantic is not a dependency: a model is anything with ``model_dump()`` / ``model_validate()``.
"""

from __future__ import annotations

from typing import Any

import msgspec


def enc_hook(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    raise TypeError(f"cannot serialise a value of type {type(obj).__qualname__}")


def _model_validate(tp: Any) -> Any:
    validate = getattr(tp, "model_validate", None)
    return validate if isinstance(tp, type) and callable(validate) else None


def dec_hook(tp: Any, obj: Any) -> Any:
    validate = _model_validate(tp)
    if validate is not None:
        return validate(obj)
    raise TypeError(f"cannot convert to {tp!r}")


def encode(value: Any) -> bytes:
    """msgpack bytes of a user value (models dumped to maps)."""
    return msgspec.msgpack.encode(value, enc_hook=enc_hook)


def decode(data: bytes) -> Any:
    return msgspec.msgpack.decode(data)


def normalize(value: Any) -> Any:
    """The builtins a value becomes on the wire, keeping msgpack types (datetimes stay datetimes)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return msgspec.msgpack.decode(encode(value))


def to_builtins(value: Any) -> Any:
    """msgspec's to-builtins conversion (datetimes → strings, bytes → base64) with the model hook."""
    return msgspec.to_builtins(value, enc_hook=enc_hook)


def convert(raw: Any, tp: Any) -> Any:
    """Convert wire builtins to ``tp`` (models through ``model_validate``); ``Any``/None keep ``raw``."""
    if tp is None or tp is Any or tp is object:
        return raw
    validate = _model_validate(tp)
    if validate is not None:
        return raw if isinstance(raw, tp) else validate(raw)
    return msgspec.convert(raw, tp, dec_hook=dec_hook)
