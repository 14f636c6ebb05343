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

T = TypeVar("T")

_waiters: weakref.WeakKeyDictionary[NATSClient, set[asyncio.Future[None]]] = weakref.WeakKeyDictionary()


def disconnected(nc: NATSClient) -> None:
    """The connection dropped: fail what waits on it (called from the disconnection callback)."""
    for waiter in list(_waiters.get(nc, ())):
        if not waiter.done():
            waiter.set_result(None)


async def guard(nc: NATSClient, operation: Awaitable[T]) -> T:
    """Await ``operation``; if ``nc`` drops meanwhile, cancel it and raise ``ConnectionResetError``."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters = _waiters.setdefault(nc, set())
    waiters.add(waiter)
    task = asyncio.ensure_future(operation)
    try:
        racing: set[asyncio.Future[Any]] = {task, waiter}
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        raise ConnectionResetError("the connection to NATS was lost while waiting for a reply")
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        waiters.discard(waiter)
        waiter.cancel()


async def request(nc: NATSClient, subject: str, data: bytes = b"", timeout: float = 5.0,
                  headers: dict[str, str] | None = None) -> Msg:
    """``nc.request`` that fails at once when the connection drops."""
    return await guard(nc, nc.request(subject, data, timeout=timeout, headers=headers))
