"""Requests that fail as soon as their connection drops.

nats-py leaves a request whose connection dropped waiting for its timeout, although its reply is lost:
a read in flight when a server dies stalls its caller for seconds, and a commit in flight stalls every
commit queued behind it. ``request()`` (and ``guard()`` for any awaitable) raise
``ConnectionResetError`` at once instead; the caller's retry then goes to the server nats-py has
reconnected to. Only for operations that are safe to repeat (every one in grctl is).

A request the server refuses for lack of permission is answered by nothing but an asynchronous error
on the connection: nats-py would wait out the timeout, and a retrying caller would try again and
again. ``refused()`` (called from the connection's error callback) makes the requests waiting on that
subject raise ``PermissionDeniedError`` at once, naming the subject.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar

from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg

from grctl import settings

T = TypeVar("T")

# The tasks waiting on each connection inside guard() (with the subject they asked on, when known), those
# a lost connection cancelled, and those a permission violation cancelled.
_waiters: weakref.WeakKeyDictionary[NATSClient, dict[asyncio.Task[Any], str]] = weakref.WeakKeyDictionary()
_cut: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
_denied: weakref.WeakKeyDictionary[asyncio.Task[Any], PermissionDeniedError] = weakref.WeakKeyDictionary()

# nats-py's text of the server's -ERR: 'nats: permissions violation for publish to "grctl_meta.layout"'
_VIOLATION = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"', re.IGNORECASE)
HELP = "docs/deployment.md#security lists what each role needs"


class PermissionDeniedError(PermissionError):
    """The NATS server refused this user an operation on a subject (a permission is missing)."""

    def __init__(self, operation: str, subject: str) -> None:
        self.operation = "subscribe" if operation.lower().startswith("sub") else "publish"
        self.subject = subject
        super().__init__(f"the NATS user may not {self.operation} to {subject!r} ({HELP})")


def permission_violation(exc: BaseException) -> PermissionDeniedError | None:
    """The permission error that ``exc`` (an error nats-py reported) is, or None."""
    found = _VIOLATION.search(str(exc))
    return PermissionDeniedError(found.group(1), found.group(2)) if found else None


def refused(nc: NATSClient, exc: BaseException) -> PermissionDeniedError | None:
    """A permission violation was reported on ``nc``: fail the requests waiting on its subject."""
    denial = permission_violation(exc)
    if denial is None or denial.operation != "publish":
        return denial
    for task, subject in list(_waiters.get(nc, {}).items()):
        # nats-py lowercases the server's message, subject included
        if subject.lower() == denial.subject.lower() and not task.done():
            _denied[task] = PermissionDeniedError(denial.operation, subject)
            task.cancel(str(denial))
    return denial


def disconnected(nc: NATSClient) -> None:
    """The connection dropped: fail what waits on it (called from the disconnection callback)."""
    for task in list(_waiters.pop(nc, {})):
        if not task.done():
            _cut.add(task)
            task.cancel("the connection to NATS was lost")


async def guard(nc: NATSClient, operation: Awaitable[T], subject: str = "") -> T:
    """Await ``operation``; if ``nc`` drops meanwhile, cancel it and raise ``ConnectionResetError``; if
    the server refuses publishing to ``subject``, raise ``PermissionDeniedError``.

    The waiting task itself is cancelled by ``disconnected()`` and the cancellation turned into the
    error here: no extra task or future per request, which matters on the engine's hot path."""
    task = asyncio.current_task()
    if task is None:  # not in a task (cannot happen under asyncio.run): no guard
        return await operation
    waiters = _waiters.setdefault(nc, {})
    outermost = task not in waiters  # a guard inside a guard leaves the registration to the outer one
    if outermost or subject:
        waiters[task] = subject
    cancels = task.cancelling()
    try:
        result = await operation
        if task.cancelling() > cancels:
            _dropped_cancel(task)
        return result
    except asyncio.CancelledError:
        denial = _denied.pop(task, None)
        if denial is not None and task.uncancel() == 0:
            raise denial from None
        if task in _cut:
            _cut.discard(task)
            if task.uncancel() == 0:  # cancelled only because the connection dropped
                raise ConnectionResetError("the connection to NATS was lost while waiting for a reply") \
                    from None
        raise
    finally:
        if outermost:
            waiters.pop(task, None)


def _dropped_cancel(task: asyncio.Task[Any]) -> None:
    """A cancel arrived together with the reply and the wait returned the reply anyway (Python 3.11's
    ``asyncio.wait_for``, which nats-py's requests use): raise it now, or the task runs on as if never
    cancelled and a stop that cancelled it waits for ever. A cancel made here (the connection dropped,
    a permission refused) is withdrawn instead: the reply came."""
    if task in _cut or task in _denied:
        _cut.discard(task)
        _denied.pop(task, None)
        if task.uncancel() == 0:
            return
    raise asyncio.CancelledError


async def request(nc: NATSClient, subject: str, data: bytes = b"", timeout: float = settings.JS_API_TIMEOUT,
                  headers: dict[str, str] | None = None) -> Msg:
    """``nc.request`` that fails at once when the connection drops."""
    return await guard(nc, nc.request(subject, data, timeout=timeout, headers=headers), subject)
