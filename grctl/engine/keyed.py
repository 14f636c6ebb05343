"""Run jobs one at a time per key, in the order they were submitted; different keys run concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class KeyedSerializer:
    """``await run(key, job)`` starts ``job()`` once every job submitted earlier for ``key`` finished.

    The order is the order of the ``run`` calls (each call registers itself before its first await).
    Only the tail of each key's chain is kept, so idle keys cost nothing.
    """

    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        return len(self._tails)

    async def run(self, key: Hashable, job: Callable[[], Awaitable[T]]) -> T:
        previous = self._tails.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = done
        try:
            if previous is not None and not previous.done():
                await asyncio.shield(previous)
            return await job()
        finally:
            if previous is not None and not previous.done():
                # Cancelled while waiting: release our successor only after our predecessor.
                previous.add_done_callback(lambda _f: _release(done))
            elif not done.done():
                done.set_result(None)
            if self._tails.get(key) is done:
                del self._tails[key]


def _release(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
