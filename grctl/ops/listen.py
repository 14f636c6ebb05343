"""``HOST:PORT`` of an HTTP listener (``http.listen``, ``grctl engine --http``), parsed without
importing the listener itself (the configuration check and the command line use it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Endpoint:
    """``host:port`` (``[::1]:9464`` for IPv6, ``:9464`` for every interface) → Endpoint."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9464), got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return Endpoint(host, int(port))
