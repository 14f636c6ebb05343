"""Rates for the Workers page, from the engine's own counters: runs started and ended and steps ended
per workflow type, and directives applied (each step result is one), per minute over the last minute
or so.

A sample is a read of a few counters every ``CONSOLE_RATE_SAMPLE`` seconds (microseconds of work), so the
page shows rates at once, without a Prometheus server."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from prometheus_client.registry import CollectorRegistry

from grctl import settings
from grctl.lifecycle import cancel

COUNTERS = ("grctl_engine_runs_started_total", "grctl_engine_runs_ended_total",
            "grctl_engine_steps_ended_total", "grctl_engine_directives_total")

Sample = dict[tuple[str, ...], float]  # (counter, label values...) → value


class Rates:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._source = registry.restricted_registry(COUNTERS)
        kept = int(settings.CONSOLE_RATE_WINDOW / settings.CONSOLE_RATE_SAMPLE) + 2
        self._samples: deque[tuple[float, Sample]] = deque(maxlen=kept)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._sample_forever(), name="grctl-console-rates")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel(self._task)
            self._task = None

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(settings.CONSOLE_RATE_SAMPLE)

    def sample(self) -> None:
        self._samples.append(self._read())

    def _read(self) -> tuple[float, Sample]:
        taken: Sample = {}
        for family in self._source.collect():
            for s in family.samples:
                if s.name in COUNTERS:
                    taken[(s.name, *s.labels.values())] = s.value
        return time.monotonic(), taken

    def per_minute(self) -> tuple[float, Sample]:
        """(seconds averaged over, the increase per minute of every counter since the oldest sample
        kept, up to now); (0, {}) before the first sample."""
        if not self._samples:
            return 0.0, {}
        (t0, first), (t1, last) = self._samples[0], self._read()
        span = t1 - t0
        if span <= 0:
            return 0.0, {}
        return span, {key: (value - first.get(key, 0.0)) * 60.0 / span for key, value in last.items()}
