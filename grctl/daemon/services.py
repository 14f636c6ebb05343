"""The embedded nats-server: a real nats-server child (JetStream on) for single-node and development use."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import msgspec

from grctl.daemon.model import DaemonConfig, EmbeddedNats
from grctl.daemon.parent_death import die_with_parent
from grctl.nats.server import NatsServerProcess

log = logging.getLogger("grctl.daemon")


def default_store_dir(environ: dict[str, str] | None = None) -> str | None:
    """``$STATE_DIRECTORY/nats`` under systemd (StateDirectory=); None means a temporary directory."""
    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    return os.path.join(state, "nats") if state else None


class EmbeddedNatsServer:
    def __init__(self, settings: EmbeddedNats) -> None:
        self.settings = settings
        store = settings.store_dir or default_store_dir()
        if store:
            Path(store).mkdir(parents=True, exist_ok=True)
        self.process = NatsServerProcess(
            port=settings.port,
            host=settings.host,
            store_dir=store,
            config_file=settings.config_file,
            log_file=os.path.join(store, "nats-server.log") if store else None,
            sync_interval=settings.sync_interval,
            # a killed grctld must not leave the server holding the port: SIGTERM lets it flush
            preexec_fn=die_with_parent(signal.SIGTERM),
        )

    def start(self) -> None:
        self.process.start()
        kept = (
            ""
            if self.settings.store_dir or default_store_dir()
            else " (temporary: set nats.embedded.store_dir to keep it)"
        )
        sync = self.settings.sync_interval or f"as set in {self.settings.config_file}"
        log.info(
            "embedded nats-server listening at %s (pid %s, store %s%s, sync interval %s)",
            self.process.url,
            self.process.pid,
            self.process.store_dir,
            kept,
            sync,
        )

    def stop(self) -> None:
        self.process.cleanup()

    def kill(self) -> None:
        self.process.kill()


def keep_services(running: DaemonConfig, new: DaemonConfig) -> DaemonConfig:
    """Embedded services are not restarted by a reload: ``new`` with the running services' settings."""
    if new.nats.embedded != running.nats.embedded or new.engine != running.engine or new.http != running.http:
        log.warning("changes to nats.embedded, engine and http take effect when grctld restarts")
    nats = new.nats
    if running.nats.embedded is not None or nats.embedded is not None:
        servers = running.nats.servers if running.nats.embedded else nats.servers
        nats = msgspec.structs.replace(nats, embedded=running.nats.embedded, servers=servers)
    return msgspec.structs.replace(new, nats=nats, engine=running.engine, http=running.http)
