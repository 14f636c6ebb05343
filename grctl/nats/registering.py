"""Workers of this process that have not finished registering their workflow types, per connection.

A program may create a worker task and start a workflow on the same connection at once, before the
worker has run at all; the engine would refuse the start ("type not registered"). So a ``Worker``
announces its types here when it is made, and a ``Client`` starting a run of one of them on that
connection first waits (``settings.REGISTRATION_WAIT`` seconds at most) until that worker is registered, has
failed to start, or has stopped. Any other start goes out at once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable

from grctl import settings
from grctl.nats.connection import Connection

_Pending = list[tuple[frozenset[str], asyncio.Event]]
_pending: weakref.WeakKeyDictionary[Connection, _Pending] = weakref.WeakKeyDictionary()


def announce(connection: Connection, types: Iterable[str], settled: asyncio.Event) -> None:
    """A worker serving ``types`` on ``connection`` sets ``settled`` once registered (or done trying)."""
    entries = [entry for entry in _pending.get(connection, []) if not entry[1].is_set()]
    entries.append((frozenset(types), settled))
    _pending[connection] = entries


async def wait_registered(connection: Connection, wf_type: str,
                          timeout: float = settings.REGISTRATION_WAIT) -> None:
    """Until no worker announced on ``connection`` for ``wf_type`` is still registering."""
    entries = _pending.get(connection)
    if not entries:
        return
    waiting = [event for types, event in entries if wf_type in types and not event.is_set()]
    if not waiting:
        return
    waits = [asyncio.ensure_future(event.wait()) for event in waiting]
    try:
        await asyncio.wait(waits, timeout=timeout)
    finally:
        for wait in waits:
            wait.cancel()
