"""Requests that fail as soon as their connection drops.

nats-py leaves a request whose connection dropped waiting for its timeout, although its reply is lost:
a read in flight when a server dies stalls its caller for seconds, and a commit in flight stalls every
commit queued behind it. ``request()`` (and ``guard()`` for any awaitable) raise
``ConnectionResetError`` at once instead; the caller's retry then goes to the server nats-py has
reconnected to. Only for operations that are safe to repeat (every one in grctl is).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar

from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg

from grctl import settings

T = TypeVar("T")

# The tasks waiting on each connection inside guard(), and those a lost connection cancelled.
_waiters: weakref.WeakKeyDictionary[NATSClient, set[asyncio.Task[Any]]] = weakref.WeakKeyDictionary()
_cut: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


def disconnected(nc: NATSClient) -> None:
    """The connection dropped: fail what waits on it (called from the disconnection callback)."""
    for task in list(_waiters.pop(nc, ())):
        if not task.done():
            _cut.add(task)
            task.cancel("the connection to NATS was lost")


async def guard(nc: NATSClient, operation: Awaitable[T]) -> T:
    """Await ``operation``; if ``nc`` drops meanwhile, cancel it and raise ``ConnectionResetError``.

    The waiting task itself is cancelled by ``disconnected()`` and the cancellation turned into the
    error here: no extra task or future per request, which matters on the engine's hot path."""
    task = asyncio.current_task()
    if task is None:  # not in a task (cannot happen under asyncio.run): no guard
        return await operation
    waiters = _waiters.setdefault(nc, set())
    outermost = task not in waiters  # a guard inside a guard leaves the registration to the outer one
    waiters.add(task)
    try:
        return await operation
    except asyncio.CancelledError:
        if task in _cut:
            _cut.discard(task)
            if task.uncancel() == 0:  # cancelled only because the connection dropped
                raise ConnectionResetError("the connection to NATS was lost while waiting for a reply") \
                    from None
        raise
    finally:
        if outermost:
            waiters.discard(task)


async def request(nc: NATSClient, subject: str, data: bytes = b"", timeout: float = settings.JS_API_TIMEOUT,
                  headers: dict[str, str] | None = None) -> Msg:
    """``nc.request`` that fails at once when the connection drops."""
    return await guard(nc, nc.request(subject, data, timeout=timeout, headers=headers))
