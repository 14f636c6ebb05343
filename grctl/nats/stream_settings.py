"""The settings of the ``grctl_state`` stream an operator chooses: replicas and the limits worth setting in
production. The flags the protocol needs are not among them (``jetstream.ensure_stream`` sets those).

An existing stream is brought to these settings at every engine start; what cannot be done is refused
with a message saying why, instead of a bare JetStream error code.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import StreamConfig

from grctl import settings
from grctl.nats import subjects

ERR_NOT_CLUSTERED = 10074  # "replicas > 1 not supported in non-clustered mode"
ERR_NO_PLACEMENT = 10005  # "no suitable peers for placement"


class StreamSettingsError(Exception):
    """The stream cannot be created with, or brought to, the configured settings."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """``replicas``: copies of every message, each on its own server (1 on a single node, 3 on a
    cluster). ``max_bytes``: the stream's size limit, -1 for none (the server's storage limit still
    applies); reaching it deletes the *oldest* messages, because message schedules rule out refusing
    new ones, so it is a guard for the disk, set far above the expected size. ``max_msg_size``: the
    largest message stored, -1 for the server's max_payload (1 MiB by default). ``duplicate_window``:
    seconds during which a repeated message id is recognised and not stored twice."""

    replicas: int = settings.REPLICAS
    max_bytes: int = -1
    max_msg_size: int = -1
    duplicate_window: float = settings.DUPLICATE_WINDOW

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= settings.MAX_REPLICAS:
            raise ValueError(f"replicas must be between 1 and {settings.MAX_REPLICAS}, got {self.replicas}")
        for name in ("max_bytes", "max_msg_size"):
            value = getattr(self, name)
            if value != -1 and value < 1:
                raise ValueError(f"{name} must be a positive number of bytes or -1 (no limit), got {value}")
        if self.duplicate_window < settings.MIN_DUPLICATE_WINDOW:
            raise ValueError(f"duplicate_window must be at least {settings.MIN_DUPLICATE_WINDOW:g}s (a "
                             "redelivered directive must still be recognised), got "
                             f"{self.duplicate_window:g}s")

    def apply(self, config: StreamConfig) -> StreamConfig:
        """``config`` with these settings."""
        return config.evolve(num_replicas=self.replicas, max_bytes=self.max_bytes,
                             max_msg_size=self.max_msg_size, duplicate_window=self.duplicate_window)

    def check_update(self, current: StreamConfig, stored_bytes: int) -> None:
        """Refuse an update that would delete data: a size limit below what the stream holds."""
        if self.max_bytes != -1 and stored_bytes > self.max_bytes and self.max_bytes != current.max_bytes:
            raise StreamSettingsError(
                f"stream {subjects.STREAM} holds {stored_bytes} bytes, more than the configured max_bytes "
                f"{self.max_bytes}: lowering the limit would delete its oldest messages (run states and "
                "histories). Raise max_bytes, or remove old data first."
            )

    def explain(self, code: int, description: str, action: str) -> StreamSettingsError:
        """A JetStream refusal to ``action`` (create/update) the stream, in words an operator can act on."""
        if code == ERR_NOT_CLUSTERED:
            why = (f"{self.replicas} replicas need a JetStream cluster and this NATS server is not "
                   "clustered; set the replicas to 1 (--replicas 1, engine.replicas: 1)")
        elif code == ERR_NO_PLACEMENT:
            why = (f"the cluster has fewer than {self.replicas} JetStream servers that are up and have room "
                   "for it; start the missing servers or lower the replicas")
        else:
            why = description
        return StreamSettingsError(f"cannot {action} stream {subjects.STREAM} with {self.replicas} "
                                   f"replica(s): {why} (JetStream error {code}: {description})")

    def describe(self) -> str:
        def size(value: int) -> str:
            return "no limit" if value == -1 else f"{value} bytes"

        return (f"{self.replicas} replica(s), max bytes {size(self.max_bytes)}, max message size "
                f"{size(self.max_msg_size)}, duplicate window {self.duplicate_window:g}s")
