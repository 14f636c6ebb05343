"""Conversion of user values to and from the wire, shared by client and worker
(docs/protocol.md#argument-binding-and-payload-conversion).

A ``CodecRegistry`` holds handlers for types msgspec does not know natively. Each handler is three
functions: ``check(type) -> bool`` (does it apply?), ``encode(obj) -> builtins`` and
``decode(type, data) -> obj``. They are tried newest first, so a later registration overrides an
earlier one. Every registry starts with one handler, for pydantic-style models: anything with
``model_dump()`` / ``model_validate()`` (pydantic itself is not a dependency).

    codec = CodecRegistry()
    codec.register(check=lambda tp: issubclass(tp, Money),
                   encode=lambda m: {"amount": str(m.amount), "currency": m.currency},
                   decode=lambda tp, data: tp(Decimal(data["amount"]), data["currency"]))
    client = Client(connection, codec=codec)
    worker = Worker(workflows=[...], connection=connection, codec=codec)

Two conversions are in use and they differ on purpose:

- ``normalize`` / ``encode``: msgpack with the registry's hooks. Used for inputs, results, event
  payloads and store values; timezone-aware datetimes stay msgpack timestamps.
- ``to_builtins``: msgspec's to-builtins with the same hooks. Used for task arguments and task results
  (and so for operation ids); datetimes become RFC 3339 strings, bytes base64 strings.

The module-level functions use ``default_codec`` unless a registry is passed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, cast

import msgspec

CheckFn: TypeAlias = Callable[[type], bool]
EncodeFn: TypeAlias = Callable[[Any], Any]
DecodeFn: TypeAlias = Callable[[type, Any], Any]


def _is_model_type(tp: type) -> bool:
    return callable(getattr(tp, "model_validate", None)) and callable(getattr(tp, "model_dump", None))


def _matches(check: CheckFn, tp: Any) -> bool:
    """A check that raises (``issubclass`` of a generic alias, say) does not apply."""
    try:
        return bool(check(tp))
    except TypeError:
        return False


class CodecRegistry:
    """Type handlers for values msgspec cannot encode or convert on its own."""

    def __init__(self) -> None:
        self._handlers: list[tuple[CheckFn, EncodeFn, DecodeFn]] = [
            (_is_model_type, lambda obj: obj.model_dump(),
             lambda tp, data: cast(Any, tp).model_validate(data)),
        ]

    def register(self, check: CheckFn, encode: EncodeFn, decode: DecodeFn) -> None:
        """Add a handler; it takes precedence over every handler registered before it."""
        self._handlers.insert(0, (check, encode, decode))

    def _handler_for(self, tp: Any) -> tuple[CheckFn, EncodeFn, DecodeFn] | None:
        if not isinstance(tp, type):
            return None
        return next((h for h in self._handlers if _matches(h[0], tp)), None)

    # --- msgspec hooks -------------------------------------------------------------------------------

    def enc_hook(self, obj: Any) -> Any:
        handler = self._handler_for(type(obj))
        if handler is None:
            raise TypeError(f"cannot serialise a value of type {type(obj).__qualname__}: register a "
                            f"handler for it in a CodecRegistry")
        return handler[1](obj)

    def dec_hook(self, tp: Any, obj: Any) -> Any:
        handler = self._handler_for(tp)
        if handler is None:
            raise TypeError(f"cannot convert to {tp!r}")
        return handler[2](tp, obj)

    # --- conversions ---------------------------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        """msgpack bytes of a user value."""
        return msgspec.msgpack.encode(value, enc_hook=self.enc_hook)

    def decode(self, data: bytes) -> Any:
        return msgspec.msgpack.decode(data)

    def normalize(self, value: Any) -> Any:
        """The builtins a value becomes on the wire, keeping msgpack types (datetimes stay datetimes)."""
        if value is None or isinstance(value, str | int | float | bool):
            return value
        return msgspec.msgpack.decode(self.encode(value))

    def to_builtins(self, value: Any) -> Any:
        """msgspec's to-builtins conversion (datetimes → strings, bytes → base64) with the hooks."""
        return msgspec.to_builtins(value, enc_hook=self.enc_hook)

    def convert(self, raw: Any, tp: Any) -> Any:
        """Convert wire builtins to ``tp``; ``Any``/``object``/None keep ``raw`` as it is."""
        if tp is None or tp is Any or tp is object:
            return raw
        handler = self._handler_for(tp)
        if handler is not None:  # a handled type at the top level: its decoder sees the raw value
            return raw if isinstance(raw, tp) else handler[2](tp, raw)
        return msgspec.convert(raw, tp, dec_hook=self.dec_hook)

    # The public SDK's names for the two conversions above.
    to_primitive = to_builtins

    def from_primitive(self, raw: Any, tp: Any) -> Any:
        return self.convert(raw, tp)


default_codec = CodecRegistry()


def _or_default(codec: CodecRegistry | None) -> CodecRegistry:
    return default_codec if codec is None else codec


def enc_hook(obj: Any) -> Any:
    return default_codec.enc_hook(obj)


def dec_hook(tp: Any, obj: Any) -> Any:
    return default_codec.dec_hook(tp, obj)


def encode(value: Any, codec: CodecRegistry | None = None) -> bytes:
    return _or_default(codec).encode(value)


def decode(data: bytes, codec: CodecRegistry | None = None) -> Any:
    return _or_default(codec).decode(data)


def normalize(value: Any, codec: CodecRegistry | None = None) -> Any:
    return _or_default(codec).normalize(value)


def to_builtins(value: Any, codec: CodecRegistry | None = None) -> Any:
    return _or_default(codec).to_builtins(value)


def convert(raw: Any, tp: Any, codec: CodecRegistry | None = None) -> Any:
    return _or_default(codec).convert(raw, tp)
