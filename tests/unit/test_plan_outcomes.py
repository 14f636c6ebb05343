"""What the engine does after a failed commit (docs/protocol.md#directive-processing): the pure
classification."""

from __future__ import annotations

import nats.errors
import pytest

from grctl.engine.persistence import CommitVerdict, classify
from grctl.nats.jetstream import JetStreamError


@pytest.mark.parametrize(("exc", "outcome"), [
    (JetStreamError(400, 10071, "wrong last sequence: 5"), CommitVerdict.RESNAPSHOT),
    (JetStreamError(400, 10164, "wrong last sequence"), CommitVerdict.RESNAPSHOT),
    (JetStreamError(400, 10201, "atomic publish batch contains duplicate message id"), CommitVerdict.DONE),
    (JetStreamError(429, 10210, "atomic publish too many inflight"), CommitVerdict.BACKOFF),
    (JetStreamError(400, 10199, "batch too large"), CommitVerdict.UNFIT),
    (nats.errors.MaxPayloadError(), CommitVerdict.UNFIT),
    (nats.errors.TimeoutError(), CommitVerdict.BACKOFF),
    (JetStreamError(503, 0, "no stream answered"), CommitVerdict.BACKOFF),
])
def test_commit_failures_are_classified(exc: BaseException, outcome: CommitVerdict) -> None:
    assert classify(exc) is outcome
