"""The orchestration engine: the per-run state machine over the ``grctl_state`` stream.

``plan`` is pure; ``store`` reads snapshots and commits atomic batches; ``manager``, ``timers``,
``bgtasks`` and ``api`` are the consumers around it; ``Engine`` puts them together.
"""

from grctl.engine.engine import Engine, run_engine

__all__ = ["Engine", "run_engine"]
