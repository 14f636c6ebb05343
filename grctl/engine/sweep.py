"""The sweep: remove what every consumer has acknowledged, a few purges per interval whatever the load.

Directives, worker tasks, fired timers and background tasks are worthless once their consumer has
acknowledged them. Purging them one run at a time (as each run ends) costs several JetStream API calls
per run on the hot path; instead, every ``interval`` the engine reads each consumer's ack floor and
purges the consumer's subjects below it in one call. Several engines may sweep the same stream: a
purge below an ack floor is idempotent.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NATSClient
from nats.js import JetStreamContext

from grctl import settings
from grctl.nats import subjects
from grctl.nats.jetstream import consumers, purge
from grctl.nats.retry import log_failure

log = logging.getLogger(__name__)

WORKER_CONSUMER_PREFIX = subjects.worker_consumer("")

_ENGINE_CONSUMERS = {
    subjects.DIRECTIVE_CONSUMER: subjects.DIRECTIVES_ALL,
    subjects.TIMER_CONSUMER: subjects.TIMERS_FIRED,
    subjects.BG_TASK_CONSUMER: subjects.BG_TASK,
    subjects.SCHEDULE_CONSUMER: subjects.SCHEDULE_FIRED,  # fired schedule ticks, like fired timers
}


class Sweeper:
    def __init__(self, nc: NATSClient, js: JetStreamContext,
                 interval: float = settings.SWEEP_INTERVAL) -> None:
        self._nc = nc
        self._js = js
        self.interval = interval
        self._swept: dict[str, int] = {}  # consumer → the ack floor already purged below

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception as exc:  # the next round catches up
                log_failure(log, "sweeping acknowledged messages", exc)

    async def sweep(self) -> int:
        """One round; returns how many messages went."""
        purged = 0
        for info in await consumers(self._js):
            name = info.name
            filter_subject = _ENGINE_CONSUMERS.get(name)
            if filter_subject is None and name.startswith(WORKER_CONSUMER_PREFIX):
                filter_subject = info.config.filter_subject
            if not filter_subject or info.ack_floor is None:
                continue
            floor = info.ack_floor.stream_seq
            if floor <= self._swept.get(name, 0):
                continue
            purged += await purge(self._nc, filter_subject, up_to_seq=floor + 1)
            self._swept[name] = floor
        if purged:
            log.debug("swept %d acknowledged messages", purged)
        return purged
