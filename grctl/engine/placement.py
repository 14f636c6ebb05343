"""Consumer leaders follow the stream leader, so a stream follower's death costs no election.

On a replicated stream every durable consumer is a Raft group of its own, and the cluster places its
leader anywhere. A consumer whose leader sits on a stream follower has to elect a new leader when that
follower dies: deliveries stop for seconds although the stream itself did not notice. Keeping every
consumer leader on the stream leader's node confines elections to the one death that needs them anyway,
the stream leader's. The engine checks the placement on each sweep and asks a misplaced consumer's
leader to step down in favour of the stream leader's node: a handful of quick elections once after a
change, none while the layout holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

from nats.aio.client import Client as NATSClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from grctl import settings
from grctl.nats import subjects
from grctl.nats.jetstream import consumers
from grctl.nats.requests import request
from grctl.nats.retry import log_failure

log = logging.getLogger(__name__)



def misplaced(stream_leader: str, consumers: Iterable[ConsumerInfo]) -> list[str]:
    """The replicated consumers whose leader is not on ``stream_leader`` (and could move there)."""
    names = []
    for info in consumers:
        cluster = info.cluster
        if cluster is None or not cluster.replicas or not cluster.leader:
            continue  # one replica (nothing to move) or electing right now (the next round sees it)
        peers = {peer.name for peer in cluster.replicas}
        if cluster.leader != stream_leader and stream_leader in peers:
            names.append(info.name)
    return names


async def stream_leader(nc: NATSClient) -> str | None:
    """The node leading the state stream, None when it has no replicas or no leader right now."""
    reply = await request(nc, f"$JS.API.STREAM.INFO.{subjects.STREAM}", b"",
                          timeout=settings.STEPDOWN_TIMEOUT)
    info: dict[str, Any] = json.loads(reply.data)
    cluster = info.get("cluster") or {}
    if not cluster.get("replicas"):
        return None
    leader = cluster.get("leader")
    return str(leader) if leader else None


async def follow_stream_leader(nc: NATSClient, js: JetStreamContext) -> int:
    """Move the leaders of misplaced consumers to the stream leader's node; returns how many moved."""
    leader = await stream_leader(nc)
    if leader is None:  # one replica: nothing to place
        return 0
    body = json.dumps({"placement": {"preferred": leader}}).encode()
    moved = 0
    for name in misplaced(leader, await consumers(js)):
        subject = f"$JS.API.CONSUMER.LEADER.STEPDOWN.{subjects.STREAM}.{name}"
        reply = json.loads((await request(nc, subject, body, timeout=settings.STEPDOWN_TIMEOUT)).data)
        if reply.get("success"):
            moved += 1
        else:  # e.g. the preferred node is catching up: the next round tries again
            log.debug("moving the leader of consumer %s to %s failed: %s", name, leader, reply.get("error"))
    if moved:
        log.info("moved the leaders of %d consumers to the stream leader %s", moved, leader)
    return moved


async def keep_consumers_with_stream_leader(nc: NATSClient, js: JetStreamContext,
                                            interval: float = settings.PLACEMENT_CHECK_INTERVAL) -> None:
    """The engine's placement task: check (and fix) the layout every ``interval`` seconds."""
    while True:
        try:
            await follow_stream_leader(nc, js)
        except Exception as exc:  # NATS trouble or an election: the next round tries again
            log_failure(log, "checking the placement of consumer leaders", exc, logging.DEBUG)
        await asyncio.sleep(interval)
