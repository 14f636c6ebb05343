"""Which consumer leaders the engine moves to the stream leader's node."""

from __future__ import annotations

from nats.js.api import ClusterInfo, ConsumerInfo, PeerInfo

from grctl.engine.placement import misplaced


def consumer(name: str, leader: str | None, peers: list[str]) -> ConsumerInfo:
    cluster = ClusterInfo(leader=leader, replicas=[PeerInfo(name=p) for p in peers])
    return ConsumerInfo(name=name, stream_name="grctl_state", config=None, created=None, cluster=cluster)  # type: ignore[arg-type]


def test_only_replicated_consumers_led_elsewhere_are_moved() -> None:
    infos = [
        consumer("with-leader", "n1", ["n2", "n3"]),
        consumer("elsewhere", "n2", ["n1", "n3"]),
        consumer("electing", None, ["n1", "n2"]),
        consumer("one-replica", "n2", []),
        consumer("not-on-leader-node", "n2", ["n3"]),  # the stream leader holds no replica of it
        ConsumerInfo(name="single-server", stream_name="grctl_state", config=None, created=None),  # type: ignore[arg-type]
    ]
    assert misplaced("n1", infos) == ["elsewhere"]
