"""The deployment guide's files (docs/examples/) made runnable on one machine: every host name becomes a
loopback port, every path one under a test directory; nothing else is changed, so what runs is what
the guide ships.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grctl.nats.server import find_nats_server, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
NODES = 3


@dataclass
class Node:
    name: str
    client_port: int = field(default_factory=free_port)
    route_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def monitor(self, endpoint: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/{endpoint}", timeout=1) as r:
            return json.loads(r.read())

    def healthy(self) -> bool:
        try:
            return self.monitor("healthz").get("status") == "ok"
        except (OSError, ValueError):
            return False


class GuideCluster:
    """Three nodes from ``nats-node.conf`` and ``accounts.conf`` as shipped, with the TLS files of ``pki``
    (a CA and a certificate for 127.0.0.1) and the role passwords in ``secrets``."""

    def __init__(self, root: Path, pki: dict[str, Path], secrets: dict[str, str]) -> None:
        self.root = root
        self.pki = pki
        self.secrets = secrets
        self.nodes = [Node(f"nats{n}") for n in range(1, NODES + 1)]
        self.gone: set[str] = set()

    def addresses(self, text: str) -> str:
        """Host names of the examples to loopback ports."""
        for node in self.nodes:
            text = text.replace(f"{node.name}.internal:4222", f"127.0.0.1:{node.client_port}")
            text = text.replace(f"{node.name}.internal:6222", f"127.0.0.1:{node.route_port}")
        return text

    def node_conf(self, node: Node) -> Path:
        text = (EXAMPLES / "nats-node.conf").read_text()
        # the file shows nats1; the others differ in their name and their own addresses only
        text = text.replace("server_name: nats1", f"server_name: {node.name}")
        text = re.sub(r"listen: nats1\.internal", f"listen: {node.name}.internal", text)
        # the routes name every node but the dead ones (the runbook replaces a dead node's route)
        routes = "".join(f"    nats-route://{n.name}.internal:6222\n" for n in self.nodes
                         if n.name not in self.gone)
        text = re.sub(r"(    nats-route://nats\d\.internal:6222\n)+", routes, text)
        text = self.addresses(text).replace("127.0.0.1:8222", f"127.0.0.1:{node.http_port}")
        text = text.replace("/var/lib/nats", str(self.root / node.name / "store"))
        text = text.replace("max_file_store: 100GB", "max_file_store: 1GB")
        for name, path in self.pki.items():
            text = text.replace(f"/etc/nats/tls/{name}", str(path))
        directory = self.root / node.name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "accounts.conf").write_text((EXAMPLES / "accounts.conf").read_text())
        conf = directory / "nats-server.conf"
        conf.write_text(text)
        return conf

    def start_node(self, node: Node) -> None:
        binary = find_nats_server()
        conf = self.node_conf(node)
        checked = subprocess.run([binary, "-c", str(conf), "-t"], env=self.secrets, capture_output=True,
                                 text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr + checked.stdout
        with open(self.root / node.name / "nats.log", "ab") as log:
            node.proc = subprocess.Popen([binary, "-c", str(conf)], env=self.secrets, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def start(self, timeout: float = 60) -> GuideCluster:
        for node in self.nodes:
            self.start_node(node)
        self.wait_healthy(timeout)
        return self

    def replace(self, dead: Node, new_name: str, timeout: float = 60) -> Node:
        """The runbook's "a new name": ``dead`` is killed, a new node is added to every node's routes
        (running nodes reload them) and started."""
        assert dead.proc is not None
        dead.proc.kill()
        dead.proc.wait()
        dead.proc = None
        self.gone.add(dead.name)
        new = Node(new_name)
        self.nodes.append(new)
        for node in self.running():
            self.node_conf(node)
            node.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]  # nats-server --signal reload
        self.start_node(new)
        self.wait_healthy(timeout)
        return new

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(n.healthy() for n in self.running()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the guide's nodes were not healthy within {timeout}s: {self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join((self.root / n.name / "nats.log").read_text(errors="replace") for n in self.nodes
                         if (self.root / n.name / "nats.log").exists())

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
