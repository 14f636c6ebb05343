"""The engine's HTTP listener (``grctl engine --http``, ``engine.http.listen`` when grctld embeds it):
``/metrics`` (this process's registry, with the process and Python collectors), ``/healthz``, and
``/readyz``: 200 while the engine runs and is connected to NATS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from grctl.engine.engine import Engine
from grctl.ops import metrics
from grctl.ops.listen import parse_listen

if TYPE_CHECKING:
    from grctl.ops.http import OpsServer


def engine_not_ready(engine: Engine) -> str | None:
    if engine.not_running_reason is not None:
        return engine.not_running_reason
    if not engine.connection.is_connected:
        return "not connected to NATS (reconnecting)"
    return None


async def serve_engine_ops(engine: Engine, listen: str | None) -> OpsServer | None:
    """Turn counting on and start the listener (before ``engine.start()``: /readyz says 503 until the
    engine runs); None when ``listen`` is not set."""
    if not listen:
        return None
    from prometheus_client import REGISTRY

    from grctl.ops.http import OpsServer

    metrics.enable()
    server = OpsServer(parse_listen(listen), REGISTRY, lambda: engine_not_ready(engine))
    await server.start()
    return server
