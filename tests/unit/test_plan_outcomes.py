"""What the engine does after a failed commit (docs/protocol.md#directive-processing): the pure
classification."""

from __future__ import annotations

import nats.errors
import pytest

from grctl.engine.persistence import Outcome, classify
from grctl.nats.jetstream import JetStreamError


@pytest.mark.parametrize(("exc", "outcome"), [
    (JetStreamError(400, 10071, "wrong last sequence: 5"), Outcome.RESNAPSHOT),
    (JetStreamError(400, 10164, "wrong last sequence"), Outcome.RESNAPSHOT),
    (JetStreamError(400, 10201, "atomic publish batch contains duplicate message id"), Outcome.DONE),
    (JetStreamError(429, 10210, "atomic publish too many inflight"), Outcome.BACKOFF),
    (JetStreamError(400, 10199, "batch too large"), Outcome.UNFIT),
    (nats.errors.MaxPayloadError(), Outcome.UNFIT),
    (nats.errors.TimeoutError(), Outcome.BACKOFF),
    (JetStreamError(503, 0, "no stream answered"), Outcome.BACKOFF),
])
def test_commit_failures_are_classified(exc: BaseException, outcome: Outcome) -> None:
    assert classify(exc) is outcome
