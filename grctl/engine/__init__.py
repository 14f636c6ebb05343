"""The orchestration engine: the per-run state machine over the ``grctl_state`` stream.

``plan`` is pure; ``persistence`` reads snapshots and commits atomic batches; ``manager``, ``timers``,
``bgtasks`` and ``api_server`` are the consumers around it; ``Engine`` puts them together, and
``program`` runs it until stopped.
"""

from grctl.engine.engine import Engine
from grctl.engine.program import run_engine, serve_engine

__all__ = ["Engine", "run_engine", "serve_engine"]
