"""A component's life: its states (``Lifecycle``), and the stop race: wait for some work or for a stop,
whichever comes first.

Every long wait of the project (connecting, starting, a child's readiness, a fetch) must give way when
the process is asked to stop, or when something else makes the wait pointless. ``until_stopped`` is the
one way to write that: it leaves the work running when it loses (the caller decides whether to cancel
it, with ``cancel``, or to keep waiting) and never leaks the waiters on the events. ``cancel`` is the
one way to end a task and wait for it. ``on_signals`` is the one place a program hears its stop (and
reload) signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any

from grctl import settings


class Lifecycle(StrEnum):
    """Where a long-lived component (the engine, a worker) is in its life; the value is how readiness
    checks say it ("engine starting")."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


async def until_stopped(work: asyncio.Future[Any], *stops: asyncio.Event,
                        timeout: float | None = None) -> bool:
    """Wait until ``work`` is done, one of ``stops`` is set, or ``timeout`` seconds pass; True when
    ``work`` is done (it may have been done first even if a stop is set now). If the caller itself is
    cancelled meanwhile, ``work`` is cancelled too."""
    waiters = [asyncio.ensure_future(stop.wait()) for stop in stops]
    try:
        await asyncio.wait({work, *waiters}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work.cancel()
        raise
    finally:
        for waiter in waiters:
            waiter.cancel()
    return work.done()


async def cancel(work: asyncio.Future[Any], again_after: float | None = settings.CANCEL_AGAIN_AFTER) -> None:
    """Cancel ``work`` and wait until it has ended, whatever it raises: what lost the race is dropped.

    A cancellation can be lost: Python 3.11's ``asyncio.wait_for`` returns a result that arrived in the
    same turn of the loop as the cancel, and the task runs on as if never cancelled. Requests to NATS
    raise such a cancel themselves (``nats.requests.guard``); for any other wait the cancel is repeated
    every ``again_after`` seconds until the work has ended. ``again_after=None``: work whose cancellation
    handler itself awaits (it hands work back, stops children) is cancelled once, so its clean-up is
    never cut short."""
    work.cancel()
    while not work.done():
        await asyncio.wait({work}, timeout=again_after)
        if again_after is not None and not work.done():
            work.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await work


@contextlib.contextmanager
def on_signals(handler: Callable[[signal.Signals], None], *signums: signal.Signals) -> Iterator[None]:
    """Call ``handler(signum)`` on the running loop for each of ``signums`` while inside; the handlers
    are removed on the way out. Off the main thread (a program embedded in another), signals cannot be
    heard: nothing is installed, and the caller's own stop event is the only way to stop it."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in signums:
        try:
            loop.add_signal_handler(signum, handler, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
