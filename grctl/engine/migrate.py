"""One-off upgrades of the records in an existing stream, run by the engine before it serves requests.

``latest pointers``: lookups by workflow id read ``grctl_latest.{wf_id}`` (ours). A stream written by
an earlier engine (or the public server) has run-info records but no pointers: they are made once from
the run-info records, then ``grctl_meta.layout`` records that the stream has them. Stop engines of an
earlier version before starting this one on the same stream: they do not keep the pointers.
"""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client as NATSClient

from grctl.models.records import LatestRun
from grctl.nats import subjects
from grctl.nats.direct import get_last, read_subject
from grctl.nats.jetstream import (
    ERR_WRONG_LAST_SEQUENCE,
    H_EXPECTED_LAST_SUBJECT_SEQ,
    H_ROLLUP,
    JetStreamError,
    publish,
)

log = logging.getLogger(__name__)

LAYOUT = subjects.meta("layout")
LATEST_POINTERS = b"latest-pointers"


async def ensure_latest_pointers(nc: NATSClient) -> int:
    """Make the latest-run pointers if the stream does not have them yet; returns how many were made."""
    stored = await get_last(nc, LAYOUT)
    if stored is not None and stored.data == LATEST_POINTERS:
        return 0
    latest: dict[str, LatestRun] = {}
    for info in await read_subject(nc, subjects.ALL_RUN_INFOS, timeout=30.0):
        parts = info.subject.split(".")
        if len(parts) == 5:
            latest[parts[2]] = LatestRun(run_id=parts[3], wf_type=parts[1])  # later records win
    made = 0
    for wf_id, pointer in latest.items():
        try:
            await publish(nc, subjects.latest(wf_id), msgspec.msgpack.encode(pointer),
                          {H_EXPECTED_LAST_SUBJECT_SEQ: "0"})
            made += 1
        except JetStreamError as exc:
            if exc.err_code != ERR_WRONG_LAST_SEQUENCE:  # a pointer already there is newer
                raise
    await publish(nc, LAYOUT, LATEST_POINTERS, {H_ROLLUP: "sub"})
    if made:
        log.info("made the latest-run pointers of %d workflow ids", made)
    return made
