"""Ours: a delayed start (``run.start`` with ``start_at``). The run is created at once — its latest-run
pointer and run info, status pending — and its start directive is a nats-server message schedule that
stores it on the run's directive subject when it falls due (docs/protocol.md#delayed-start)."""

from __future__ import annotations

from datetime import datetime

from grctl.models.directive import Directive, encode_directive
from grctl.nats import subjects
from grctl.nats.jetstream import OutMsg, schedule_headers


def delayed_start(d: Directive, start_at: datetime) -> OutMsg:
    """Ours: the start directive as a message schedule that stores it on the run's directive subject
    at ``start_at`` (docs/protocol.md#delayed-start). A cancel before then ends the run, and the start
    that comes later finds it finished."""
    ri = d.run_info
    return OutMsg(subjects.timer(ri.wf_id, "delayed_start", ri.id), encode_directive(d),
                  schedule_headers(start_at, subjects.directive(ri.wf_type, ri.wf_id, ri.id)))
