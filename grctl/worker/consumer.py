"""The worker-task consumer of a workflow type: durable pull consumer ``grctl_worker_{wf_type}`` on
``grctl_worker_task.{wf_type}.>``, shared by every worker of that type (docs/protocol.md#consumers)."""

from __future__ import annotations

import os

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from grctl import settings
from grctl.nats import subjects
from grctl.worker.errors import WorkerConsumerError


def ack_wait_from_env(environ: dict[str, str] | None = None) -> float:
    """``ENGINE_NATS_WORKER_ACK_WAIT`` in seconds (default 5)."""
    raw = (os.environ if environ is None else environ).get("ENGINE_NATS_WORKER_ACK_WAIT", "").strip()
    if not raw:
        return settings.WORKER_ACK_WAIT
    value = float(raw)
    if value <= 0:
        raise ValueError(f"ENGINE_NATS_WORKER_ACK_WAIT must be positive, got {raw!r}")
    return value


async def ensure_task_consumer(
        js: JetStreamContext, wf_type: str, ack_wait: float,
        max_ack_pending: int = settings.WORKER_MAX_ACK_PENDING) -> JetStreamContext.PullSubscription:
    """Create or update the pull consumer of ``wf_type`` and bind to it; refuse a push consumer."""
    durable = subjects.worker_consumer(wf_type)
    try:
        info = await js.consumer_info(subjects.STREAM, durable)
    except NotFoundError:
        info = None
    if info is not None and info.config.deliver_subject:
        raise WorkerConsumerError(
            f"consumer {durable} on stream {subjects.STREAM} is a push consumer: workers of an older grctl "
            f"SDK (0.3.0) serve workflow type {wf_type!r}. Stop them (or delete the consumer) before "
            "starting this worker; the two kinds cannot share a workflow type."
        )
    config = ConsumerConfig(
        durable_name=durable,
        filter_subject=subjects.worker_task_filter(wf_type),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
    )
    await js.add_consumer(subjects.STREAM, config)
    return await js.pull_subscribe_bind(durable, stream=subjects.STREAM)
