"""Whether the stream's storage is full, as the engine's commits find it: JetStream refuses a write when
its storage limit is reached (the server's, computed from the disk at its start unless configured; the
account's; or the stream's ``max_bytes``), and accepts writes again once room was made (runs removed
after their retention, acknowledged messages swept, or the operator's doing), without a restart.

Large writes may be refused while small ones still fit, so one accepted commit does not end the
condition: it ends when commits are accepted and none was refused for ``settings.STORAGE_FULL_HOLD``
seconds. The engine shows the condition on ``/readyz`` and as a metric, answers starts with "storage
full" at once, and treats the time the storage was full like a time it was not watching timers: a step
could not report then.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from grctl import settings
from grctl.models.common import utcnow
from grctl.ops import metrics

log = logging.getLogger(__name__)


class StorageCondition:
    def __init__(self) -> None:
        self._refused: float | None = None  # time.monotonic() of the last refusal
        self._accepted: float = 0.0  # ... of the last accepted commit
        self.last_refused: datetime | None = None  # wall clock of the last refusal
        self.reason = ""

    @property
    def full(self) -> bool:
        if self._refused is None:
            return False
        recent = time.monotonic() - self._refused < settings.STORAGE_FULL_HOLD
        return self._accepted <= self._refused or recent

    def refused(self, exc: BaseException) -> None:
        if not self.full:
            log.error("the stream's storage is full: JetStream refuses writes (%s); runs wait, starts are "
                      "refused, until room is made", exc)
        self._refused = time.monotonic()
        self.last_refused = utcnow()
        self.reason = str(exc)
        metrics.storage_refused()

    def accepted(self) -> None:
        was_full = self.full
        self._accepted = time.monotonic()
        if was_full and not self.full:
            log.warning("the stream accepts writes again: storage is no longer full")
            metrics.storage_accepting()
