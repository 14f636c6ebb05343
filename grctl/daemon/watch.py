"""Watch the configuration file's directory (and optionally the workflow sources) for changes.

The directory is watched, not the file: editors and Kubernetes ConfigMaps replace a file by renaming
another over it (or by swapping a symlink), which a watch on the file itself would lose. Of the
directory's events only those of the file and of the symlinks that lead to it count, so that other
files there (e.g. a nats-server store) do not wake the caller. Whether the configuration really
changed is decided by the caller from the file's content.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from watchfiles import Change, awatch

from grctl import settings

log = logging.getLogger("grctl.daemon")



def digest(path: str) -> str | None:
    """SHA-256 of the file's content (through symlinks), None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _python_source(change: Change, path: str) -> bool:
    return path.endswith(".py")


def link_chain(path: str) -> set[str]:
    """``path`` and every symlink met while resolving it, with what each leads to: the names whose
    replacement changes what ``path`` reads (a ConfigMap swaps ``..data``, not the file)."""
    found = {os.path.normpath(path)}
    pending = list(found)
    while pending and len(found) < settings.WATCH_MAX_LINKS:
        current = pending.pop()
        head = current
        while os.path.dirname(head) != head:
            if os.path.islink(head):
                try:
                    target = os.path.join(os.path.dirname(head), os.readlink(head))
                except OSError:
                    break  # replaced meanwhile: the next event looks again
                rest = os.path.relpath(current, head)
                for name in (head, os.path.normpath(os.path.join(target, rest))):
                    if name not in found:
                        found.add(name)
                        pending.append(name)
            head = os.path.dirname(head)
    return found


def only_file(path: str) -> Callable[[Change, str], bool]:
    """A watch filter that passes the events of ``path`` and of the symlinks leading to it."""
    return lambda _change, changed: os.path.normpath(changed) in link_chain(path)


async def watch_paths(
    paths: Iterable[str],
    on_change: Callable[[set[str]], None],
    stop: asyncio.Event,
    recursive: bool,
    watch_filter: Callable[[Change, str], bool] | None = None,
) -> None:
    """Call ``on_change(changed paths)`` for each batch of changes under ``paths`` until ``stop`` is set."""
    roots = sorted({p for p in paths if os.path.isdir(p)})  # noqa: ASYNC240 (once, at start)
    if not roots:
        await stop.wait()
        return
    async for changes in awatch(
        *roots,
        stop_event=stop,
        recursive=recursive,
        debounce=settings.WATCH_DEBOUNCE_MS,
        step=settings.WATCH_STEP_MS,
        rust_timeout=settings.WATCH_TICK_MS,
        yield_on_timeout=True,
        watch_filter=watch_filter,
    ):
        if changes:
            on_change({path for _, path in changes})


class Watcher:
    """Watches the config directory (and, when asked, the workflow source directories)."""

    def __init__(
        self,
        config_path: str,
        on_config: Callable[[], None],
        on_sources: Callable[[set[str]], None],
        source_dirs: Iterable[str] = (),
    ) -> None:
        self.config_path = os.path.abspath(config_path)
        self.on_config = on_config
        self.on_sources = on_sources
        self.source_dirs = sorted(set(source_dirs))
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, watch_config: bool) -> None:
        if watch_config:
            config_dir = os.path.dirname(self.config_path)
            self._tasks.append(
                asyncio.create_task(
                    watch_paths(
                        [config_dir],
                        lambda _: self.on_config(),
                        self._stop,
                        recursive=False,
                        watch_filter=only_file(self.config_path),
                    )
                )
            )
        if self.source_dirs:
            self._tasks.append(
                asyncio.create_task(
                    watch_paths(
                        self.source_dirs,
                        self.on_sources,
                        self._stop,
                        recursive=True,
                        watch_filter=_python_source,
                    )
                )
            )
        for task in self._tasks:
            task.add_done_callback(self._report)

    @staticmethod
    def _report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("file watching stopped: %s (SIGHUP still reloads)", task.exception())

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, (settings.WATCH_TICK_MS / 1000) + 2)
            except (TimeoutError, asyncio.CancelledError, Exception):
                task.cancel()
        self._tasks.clear()
