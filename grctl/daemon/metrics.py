"""The supervisor's own metrics (in memory, in a registry of their own: the supervisor does not count
into the workers' multiprocess directory)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from prometheus_client.registry import CollectorRegistry

from grctl.daemon.channel import Role

REGISTRY = CollectorRegistry(auto_describe=True)

GENERATIONS_STARTED = Counter("grctl_daemon_generations_started", "Worker generations started",
                              registry=REGISTRY)
RELOADS = Counter("grctl_daemon_reloads", "Reloads by outcome: applied, refused (configuration error), "
                  "failed (the new generation did not start; the old one kept running)", ["outcome"],
                  registry=REGISTRY)
CHILD_RESTARTS = Counter("grctl_daemon_child_restarts", "Crashed child processes started again",
                         ["role"], registry=REGISTRY)
CONFIG_LOADED = Gauge("grctl_daemon_config_last_load_timestamp_seconds",
                      "When the configuration in use was loaded (Unix time)", registry=REGISTRY)
GENERATION = Gauge("grctl_daemon_generation", "Number of the current (ready) worker generation",
                   registry=REGISTRY)
READY = Gauge("grctl_daemon_ready", "1 when the current generation is ready and connected, else 0",
              registry=REGISTRY)

for _outcome in ("applied", "refused", "failed"):
    RELOADS.labels(_outcome)  # every outcome is shown from the start, at zero
for _role in Role:
    CHILD_RESTARTS.labels(_role)
