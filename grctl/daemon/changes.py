"""The supervisor's part that notices changes: the configuration file and (optionally) the workflow
sources, through the file watch and a periodic content check under it; a real change requests a
reload."""

from __future__ import annotations

import asyncio
import logging
import os

from grctl.daemon.events import ConfigCheck, ConfigTouched, SourcesTouched
from grctl.daemon.model import DaemonConfig
from grctl.daemon.supervisor_state import SupervisorState
from grctl.daemon.watch import Watcher, digest

log = logging.getLogger("grctl.daemon")


class ChangeWatch(SupervisorState):
    def _on_config_event(self, by: ConfigCheck) -> None:
        """A file event (``watch``) or the periodic check (``poll``) of the configuration file."""
        now = digest(self.config_path)
        if now is None:
            return  # between a delete and a rename
        if now == self.digest:
            if by is ConfigCheck.WATCH:
                log.info("configuration file written without a change: nothing to do")
            return
        self._request_reload("configuration file changed")

    def _on_sources_event(self, paths: frozenset[str]) -> None:
        """Reload when a source file's content changed (a rename-over can come as several events)."""
        changed = sorted(p for p in paths if digest(p) != self.sources.get(p))
        self.sources.update({p: digest(p) for p in paths})
        if changed:
            self._request_reload(f"workflow sources changed ({', '.join(changed)})")

    def _restart_watcher(self, cfg: DaemonConfig, files: list[str]) -> None:
        old = self.watcher
        if old is not None:
            self.spawn(old.stop())
        sources = (
            [os.path.dirname(f) for f in files] + list(cfg.python_path) if cfg.reload.watch_workflows else []
        )
        self.watcher = Watcher(
            self.config_path,
            on_config=lambda: self.queue.put_nowait(ConfigTouched(ConfigCheck.WATCH)),
            on_sources=lambda changed: self.queue.put_nowait(SourcesTouched(frozenset(changed))),
            source_dirs=sources,
        )
        self.watcher.start(cfg.reload.watch_config)

    async def _poll(self, interval: float) -> None:
        """The safety net under the file watch: compare contents every few seconds, so a change that
        no event reported (made before the watch was set up, or on a file system without inotify)
        still reloads. Both checks are content digests, so nothing reloads twice."""
        while not self.stopping:
            await asyncio.sleep(interval)
            if self.cfg.reload.watch_config:
                self.queue.put_nowait(ConfigTouched(ConfigCheck.POLL))
            if self.cfg.reload.watch_workflows and self.sources:
                self.queue.put_nowait(SourcesTouched(frozenset(self.sources)))
