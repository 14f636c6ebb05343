"""The run-scoped key/value store behind ``ctx.store`` (docs/protocol.md#the-store).

``put`` encodes at once and buffers; nothing is written until the step's result carries the pending
writes (``kv_updates``) to the engine, which stores them in the same commit as the transition.
``get`` reads the buffer, else the last value on ``grctl_wf_kv.{wf_id}.{run_id}.{key}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import msgspec

from grctl.codec import CodecRegistry, default_codec
from grctl.nats.subjects import check_token

T = TypeVar("T")

Loader = Callable[[str], Awaitable[bytes | None]]


class StoreKeyNotFoundError(KeyError):
    """The key was never written in this run."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"store key not found: {self.key!r}"


class Store:
    def __init__(self, loader: Loader, codec: CodecRegistry | None = None) -> None:
        self._loader = loader
        self._codec = codec or default_codec
        self._data: dict[str, bytes] = {}
        self._dirty: set[str] = set()

    @overload
    async def get(self, key: str) -> Any: ...

    @overload
    async def get(self, key: str, type: type[T]) -> T: ...

    @overload
    async def get(self, key: str, *, ty: type[T]) -> T: ...

    async def get(self, key: str, type: Any = None, *, ty: Any = None) -> Any:
        """The value of ``key`` (converted to ``type`` when given; ``ty`` is the public SDK's name for
        it); ``StoreKeyNotFoundError`` if absent."""
        check_token("store key", key)
        type = type if ty is None else ty
        raw = self._data.get(key)
        if raw is None:
            raw = await self._loader(key)
            if raw is None:
                raise StoreKeyNotFoundError(key)
            self._data[key] = raw
        return self._codec.convert(msgspec.msgpack.decode(raw), type)

    def put(self, key: str, value: Any) -> None:
        """Set ``key`` for the rest of the run; sent with the step's result."""
        check_token("store key", key)
        self._data[key] = self._codec.encode(value)
        self._dirty.add(key)

    def take_pending(self) -> dict[str, Any]:
        """The writes not yet sent, as wire builtins; clears them."""
        pending = {k: msgspec.msgpack.decode(self._data[k]) for k in sorted(self._dirty)}
        self._dirty.clear()
        return pending
