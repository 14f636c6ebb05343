"""``WorkflowFuture``: the outcome of one run as an ``asyncio.Future`` (what ``handle.future`` is).

It mirrors the future of the handle's ``RunWatcher``: the run's result, or ``WorkflowError`` (failed),
``WorkflowCancelledError``/``WorkflowTerminatedError`` (both ``asyncio.CancelledError``) or
``TimeoutError`` (run-level timeout). Cancelling it — ``asyncio.wait_for`` does so on a timeout — stops
the watch as well. ``await future.stop()`` stops listening and cancels it if it is not done;
``await future.discard()`` also marks a settled outcome as retrieved.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grctl.models.common import RunInfo
    from grctl.nats.outcome import RunWatcher


def _retrieve(future: asyncio.Future[Any]) -> None:
    """An outcome nobody awaits must not be reported as "exception never retrieved"."""
    if not future.cancelled():
        future.exception()


class WorkflowFuture(asyncio.Future[Any]):
    def __init__(self, run_info: RunInfo, watcher: RunWatcher) -> None:
        super().__init__(loop=watcher.future.get_loop())
        self.run_info = run_info
        self._watcher = watcher
        self.add_done_callback(_retrieve)
        watcher.future.add_done_callback(self._mirror)

    def _mirror(self, source: asyncio.Future[Any]) -> None:
        if self.done():
            return
        if source.cancelled():
            self.cancel()
        elif (exc := source.exception()) is not None:
            self.set_exception(exc)
        else:
            self.set_result(source.result())

    def cancel(self, msg: Any = None) -> bool:
        """Cancel this future and the watch behind it (the run itself goes on)."""
        cancelled = super().cancel(msg)
        if cancelled and not self._watcher.future.done():
            self._watcher.future.cancel(msg)
        return cancelled

    async def stop(self) -> None:
        """Stop listening for the outcome; cancel this future if it is not done."""
        await self._watcher.close()
        if not self.done():
            self.cancel()

    async def discard(self) -> None:
        """Stop listening and drop the outcome, whatever it was."""
        await self._watcher.discard()
        if not self.done():
            self.cancel()
