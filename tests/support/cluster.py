"""A nats-server cluster on loopback for tests and benchmarks: N real nodes (3 by default), each with its
own server name, client port, route port, monitoring port and JetStream store, all in one cluster.

Each node is a ``NatsServerProcess`` (the single-node server of ``grctl.nats.server``) given the cluster
flags, so starting, stopping and killing a node is exactly what the single-node tests do: by pid, with
the store kept for a restart. The cluster adds what only a cluster has: waiting for the JetStream meta
leader, finding a stream's leader and followers, and waiting until a restarted node has caught up.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from grctl.nats.server import NatsServerProcess, free_port

CLUSTER_NAME = "grctl-test"


class ClusterNode:
    """One node: its server process and the ports that stay the same across restarts."""

    def __init__(self, name: str, root: Path, route_port: int, routes: list[str]) -> None:
        self.name = name
        self.route_port = route_port
        self.http_port = free_port()
        shutil.rmtree(root / name, ignore_errors=True)  # a retried start begins afresh
        store = root / name / "store"
        store.mkdir(parents=True)
        args = ["--server_name", name, "--cluster_name", CLUSTER_NAME,
                "--cluster", f"nats://127.0.0.1:{route_port}", "--routes", ",".join(routes),
                "-m", str(self.http_port)]
        self.server = NatsServerProcess(store_dir=store, extra_args=args, log_file=root / name / "nats.log")

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int | None:
        return self.server.pid

    @property
    def running(self) -> bool:
        return self.server.proc is not None and self.server.proc.poll() is None

    def monitor(self, endpoint: str, timeout: float = 1.0) -> dict[str, Any]:
        """A monitoring endpoint's JSON (``jsz``, ``healthz``, ``routez`` ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/{endpoint}", timeout=timeout) as r:
            return json.loads(r.read())

    def healthy(self) -> bool:
        """JetStream on this node is up and current with the meta group (``/healthz`` answers ok)."""
        try:
            return self.monitor("healthz").get("status") == "ok"
        except (OSError, ValueError):  # an unhealthy node answers 503, which urllib raises
            return False

    def meta_leader(self) -> str | None:
        try:
            return (self.monitor("jsz").get("meta_cluster") or {}).get("leader") or None
        except (OSError, ValueError):
            return None

    def log_text(self) -> str:
        path = Path(self.server.log_file or "")
        return path.read_text(errors="replace") if path.is_file() else ""


class NatsCluster:
    """``size`` nodes routed to each other on 127.0.0.1; ``start()`` returns once every node is healthy
    and a JetStream meta leader is known. Nodes are stopped and killed by pid."""

    def __init__(self, size: int = 3, root: str | Path | None = None) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="grctl-cluster-"))
        self.size = size
        self.nodes = self._new_nodes()

    def _new_nodes(self) -> list[ClusterNode]:
        route_ports = [free_port() for _ in range(self.size)]
        routes = [f"nats://127.0.0.1:{p}" for p in route_ports]
        return [ClusterNode(f"n{i + 1}", self.root, port, routes) for i, port in enumerate(route_ports)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    def start(self, timeout: float = 30.0, attempts: int = 3) -> NatsCluster:
        """Start every node and wait until the cluster is ready. A port picked free can be taken by
        another process before its node binds it (the node then exits): the cluster is then made
        again on fresh ports, ``attempts`` times at most."""
        for attempt in range(1, attempts + 1):
            try:
                for node in self.nodes:
                    node.server.start(timeout=timeout)
                self.wait_ready(timeout, all_running=True)
                return self
            except BaseException:
                port_taken = any("address already in use" in n.log_text() for n in self.nodes)
                self.stop()
                if not port_taken or attempt == attempts:
                    self.cleanup()
                    raise
                self.nodes = self._new_nodes()
        raise AssertionError("unreachable")

    def wait_ready(self, timeout: float = 30.0, all_running: bool = False) -> str:
        """Until every running node is healthy and agrees on a meta leader; returns its name. With
        ``all_running`` (a cluster starting), a node that exited fails the wait at once."""
        deadline = time.monotonic() + timeout
        while True:
            running = [n for n in self.nodes if n.running]
            if all_running and len(running) < len(self.nodes):
                dead = [n.name for n in self.nodes if not n.running]
                raise RuntimeError(f"nats-server {', '.join(dead)} exited while the cluster started")
            leaders = {n.meta_leader() for n in running}
            if running and all(n.healthy() for n in running) and len(leaders) == 1 and None not in leaders:
                return leaders.pop()  # type: ignore[return-value]
            if time.monotonic() > deadline:
                state = {n.name: (n.running, n.healthy(), n.meta_leader()) for n in self.nodes}
                raise TimeoutError(f"cluster not ready within {timeout}s (running, healthy, meta leader): "
                                   f"{state}")
            time.sleep(0.1)

    def stream_info(self, stream: str) -> dict[str, Any]:
        """The stream's entry of ``/jsz?streams=true`` as its leader sees it (only the leader knows
        whether the followers are current)."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                jsz = node.monitor("jsz?streams=true&config=true")
            except (OSError, ValueError):
                continue
            for account in jsz.get("account_details") or []:
                for info in account.get("stream_detail") or []:
                    if info.get("name") == stream and (info.get("cluster") or {}).get("leader") == node.name:
                        return info
        raise LookupError(f"no running node leads stream {stream}")

    def stream_leader(self, stream: str) -> ClusterNode:
        return self.node(self.stream_info(stream)["cluster"]["leader"])

    def stream_followers(self, stream: str) -> list[ClusterNode]:
        replicas = self.stream_info(stream)["cluster"].get("replicas") or []
        return [self.node(r["name"]) for r in replicas]

    def wait_stream_current(self, stream: str, timeout: float = 30.0) -> None:
        """Until the stream has a leader and every replica is current (a restarted node caught up)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                cluster = self.stream_info(stream)["cluster"]
                replicas = cluster.get("replicas") or []
                if replicas and all(r.get("current") for r in replicas):
                    return
            except LookupError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {stream} not current on every replica within {timeout}s")
            time.sleep(0.1)

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL by pid: a crash; the node's store stays for a restart."""
        node.server.kill()

    def restart(self, node: ClusterNode, timeout: float = 30.0) -> None:
        """Start a stopped or killed node again, on the same ports and store."""
        node.server.start(timeout=timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.server.stop()

    def cleanup(self) -> None:
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"--- {n.name} ---\n{n.log_text()[-4000:]}" for n in self.nodes)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
