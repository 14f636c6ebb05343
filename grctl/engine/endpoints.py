"""The engine's HTTP listener (``grctl engine --http``, ``engine.http.listen`` when grctld embeds it):
``/metrics`` (this process's registry, with the process and Python collectors), ``/healthz``,
``/readyz``: 200 while the engine runs, is connected to NATS and the stream has room for its writes,
and the web console at ``/`` when the caller mounts it (``grctl.console``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from grctl.engine.engine import Engine
from grctl.ops import metrics
from grctl.ops.listen import parse_listen

if TYPE_CHECKING:
    from grctl.ops.http import Mount, OpsServer

log = logging.getLogger("grctl.engine")

MountFor = Callable[[Engine], "Mount"]  # the console's routes for this engine


def engine_not_ready(engine: Engine) -> str | None:
    if engine.not_running_reason is not None:
        return engine.not_running_reason
    if not engine.connection.is_connected:
        return "not connected to NATS (reconnecting)"
    storage = engine.committer.storage
    if storage.full:
        return f"the stream's storage is full: JetStream refuses writes ({storage.reason})"
    return None


async def serve_engine_ops(engine: Engine, listen: str | None,
                           mount_for: MountFor | None = None) -> OpsServer | None:
    """Turn counting on and start the listener (before ``engine.start()``: /readyz says 503 until the
    engine runs); None when ``listen`` is not set."""
    if not listen:
        return None
    from prometheus_client import REGISTRY

    from grctl.ops.http import OpsServer

    metrics.enable()
    server = OpsServer(parse_listen(listen), REGISTRY, lambda: engine_not_ready(engine),
                       mount=mount_for(engine) if mount_for is not None else None)
    await server.start()
    if mount_for is not None:
        log.info("web console: http://%s:%d/", _host_in_url(server.endpoint.host), server.port)
    return server


def _host_in_url(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "localhost"  # every interface: this host's own name works
    return f"[{host}]" if ":" in host else host
