"""The NATS cluster as an operator sees it: where the ``grctl_state`` stream's replicas are and whether they
are current, which node leads JetStream (its meta group), and removing a node that is gone for good.

The stream's status is asked in the grctl account (any grctl role may read it); the meta group and peer
removal need a user of the system account, which is what the server requires for them.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATSClient
from nats.aio.msg import Msg

from grctl import settings
from grctl.nats import subjects
from grctl.nats.requests import request

PING_JSZ = "$SYS.REQ.SERVER.PING.JSZ"  # every server answers with its JetStream report
REMOVE_PEER = "$JS.API.SERVER.REMOVE"  # answered by the meta leader only


@dataclass(frozen=True)
class Replica:
    name: str
    leader: bool
    current: bool
    offline: bool
    lag: int = 0
    active_ns: int = 0


async def stream_replicas(nc: NATSClient) -> list[Replica]:
    """The stream's leader and its followers, as the stream leader reports them."""
    reply = json.loads((await request(nc, f"$JS.API.STREAM.INFO.{subjects.STREAM}", b"",
                                      timeout=settings.JS_API_TIMEOUT)).data)
    if "error" in reply:
        raise RuntimeError(f"stream {subjects.STREAM}: {reply['error'].get('description', reply['error'])}")
    cluster = reply.get("cluster") or {}
    found = [Replica(cluster.get("leader") or "", True, True, False)] if cluster.get("leader") else []
    for peer in cluster.get("replicas") or []:
        found.append(Replica(peer.get("name", "?"), False, bool(peer.get("current")),
                             bool(peer.get("offline")), int(peer.get("lag") or 0),
                             int(peer.get("active") or 0)))
    return found


async def gather(nc: NATSClient, subject: str,
                 seconds: float = settings.CLUSTER_GATHER) -> list[dict[str, Any]]:
    """Every answer to one request that many servers answer, for ``seconds``."""
    answers: list[dict[str, Any]] = []

    async def collect(msg: Msg) -> None:
        try:
            answers.append(json.loads(msg.data))
        except ValueError:
            pass

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(subject, b"", reply=inbox)
        await asyncio.sleep(seconds)
    finally:
        await sub.unsubscribe()
    return answers


@dataclass(frozen=True)
class MetaGroup:
    leader: str | None
    servers: list[str]  # the servers that answered
    peers: dict[str, bool]  # the meta group's other peers as the leader sees them: name -> current


async def meta_group(nc: NATSClient) -> MetaGroup:
    """The JetStream meta leader and peers (a system-account user)."""
    leader, servers, peers = None, [], {}
    for answer in await gather(nc, PING_JSZ):
        server = (answer.get("server") or {}).get("name", "?")
        servers.append(server)
        meta = (answer.get("data") or {}).get("meta_cluster") or {}
        if meta.get("leader") == server:
            leader = server
            peers = {r.get("name", "?"): bool(r.get("current")) and not r.get("offline")
                     for r in meta.get("replicas") or []}
    return MetaGroup(leader, sorted(servers), peers)


async def remove_peer(nc: NATSClient, name: str, timeout: float, progress: Any = print) -> None:
    """Remove the server ``name`` from the JetStream cluster. Right after a node died the cluster may have
    no meta leader yet (an election follows when the leader died): wait for one first."""
    deadline = time.monotonic() + timeout
    said = False
    while True:
        meta = await meta_group(nc)
        if meta.leader and meta.leader != name:
            if name in meta.servers:
                raise RuntimeError(f"{name} is up (it answered): stop it for good before removing it")
            reply = json.loads((await request(nc, REMOVE_PEER, json.dumps({"peer": name}).encode(),
                                              timeout=settings.JS_API_TIMEOUT)).data)
            if reply.get("success"):
                return
            error = (reply.get("error") or {}).get("description", reply)
            raise RuntimeError(f"the meta leader {meta.leader} refused to remove {name}: {error}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no JetStream meta leader within {timeout:.0f}s; servers up: "
                               f"{', '.join(meta.servers) or 'none'}")
        if not said:
            progress(f"waiting for a JetStream meta leader (servers up: {', '.join(meta.servers) or 'none'})")
            said = True
        await asyncio.sleep(settings.PEER_REMOVE_POLL)
