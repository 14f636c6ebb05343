"""The resolved daemon configuration: every default filled in, every path absolute, secrets read.

It travels to worker and engine processes as JSON over a pipe (never argv or the environment), and is
printed by ``--print-config`` with the secrets masked.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from grctl import settings
from grctl.console.settings import ConsoleSettings
from grctl.models.schedule import ScheduleSpec
from grctl.nats.server_config import SYNC_ALWAYS
from grctl.nats.stream_settings import StreamSettings

MASK = "********"


class TLSConfig(msgspec.Struct, frozen=True, kw_only=True):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    handshake_first: bool = False

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


class EmbeddedNats(msgspec.Struct, frozen=True, kw_only=True):
    host: str = settings.EMBEDDED_NATS_HOST
    port: int = settings.NATS_PORT
    store_dir: str | None = None
    config_file: str | None = None
    # "always" or a Go duration; None when config_file has its own jetstream block, which then decides
    sync_interval: str | None = SYNC_ALWAYS

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nats://{host}:{self.port}"


class NatsConfig(msgspec.Struct, frozen=True, kw_only=True):
    servers: list[str]
    name: str = "grctld"
    credentials_file: str | None = None
    nkey_seed_file: str | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    tls: TLSConfig | None = None
    connect_timeout: float = settings.CONNECT_TIMEOUT
    max_reconnect_attempts: int = settings.MAX_RECONNECT_ATTEMPTS
    reconnect_wait: float = settings.RECONNECT_WAIT
    embedded: EmbeddedNats | None = None

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Connection.connect`` (and so ``nats.connect``)."""
        return {
            "servers": list(self.servers),
            "name": self.name,
            "connect_timeout": self.connect_timeout,
            "max_reconnect_attempts": self.max_reconnect_attempts,
            "reconnect_time_wait": self.reconnect_wait,
            **self.auth_options(),
        }

    def auth_options(self) -> dict[str, Any]:
        """The credentials and TLS part of ``connect_options`` (for a caller with its own timeouts)."""
        opts: dict[str, Any] = {}
        if self.user is not None:
            opts["user"] = self.user
            opts["password"] = self.password or ""
        if self.token is not None:
            opts["token"] = self.token
        if self.credentials_file:
            opts["user_credentials"] = self.credentials_file
        if self.nkey_seed_file:
            opts["nkeys_seed"] = self.nkey_seed_file
        if self.tls is not None:
            opts["tls"] = self.tls.context()
            if self.tls.server_name:
                opts["tls_hostname"] = self.tls.server_name
            if self.tls.handshake_first:
                opts["tls_handshake_first"] = True
        return opts


class WorkflowLoggerConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str = "grctl.workflow"
    level: str | None = None


class LoggingConfig(msgspec.Struct, frozen=True, kw_only=True):
    level: str = "info"
    format: str = "text"
    destination: str = "stderr"
    workflow_logger: WorkflowLoggerConfig = msgspec.field(default_factory=WorkflowLoggerConfig)


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    max_concurrent_steps: int = settings.MAX_CONCURRENT_STEPS
    processes: int = settings.WORKER_PROCESSES
    ready_timeout: float = settings.READY_TIMEOUT


class ReloadConfig(msgspec.Struct, frozen=True, kw_only=True):
    watch_config: bool = True
    watch_workflows: bool = False
    # Start a generation whose code lacks handlers that live runs need (they then wait, stuck, for
    # fitting code); by default such a reload is refused and the running generation kept.
    allow_missing_handlers: bool = False


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True):
    listen: str | None = None  # HOST:PORT of /metrics, /healthz and /readyz; None: no listener


class EngineHttpConfig(HttpConfig, frozen=True, kw_only=True):
    console: ConsoleSettings = msgspec.field(default_factory=ConsoleSettings)  # at / of ``listen``


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    embedded: bool = False
    step_timeout: float | None = None
    wait_timeout: float | None = None
    retention: float = settings.RETENTION  # 0: finished runs are kept for ever
    replicas: int = settings.REPLICAS
    max_bytes: int = -1
    max_msg_size: int = -1
    duplicate_window: float = settings.DUPLICATE_WINDOW
    http: EngineHttpConfig = msgspec.field(default_factory=EngineHttpConfig)

    def stream_settings(self) -> StreamSettings:
        return StreamSettings(replicas=self.replicas, max_bytes=self.max_bytes,
                              max_msg_size=self.max_msg_size, duplicate_window=self.duplicate_window)


class DaemonConfig(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    workflows: list[str]  # empty on an engine-only node
    python_path: list[str] = msgspec.field(default_factory=list)
    nats: NatsConfig
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    shutdown_timeout: float = settings.SHUTDOWN_TIMEOUT
    worker: WorkerConfig = msgspec.field(default_factory=WorkerConfig)
    reload: ReloadConfig = msgspec.field(default_factory=ReloadConfig)
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    schedules: dict[str, ScheduleSpec] = msgspec.field(default_factory=dict)

    def encode(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def decode(cls, raw: bytes) -> DaemonConfig:
        return msgspec.json.decode(raw, type=cls)

    def secrets(self) -> list[str]:
        """Secret values that must never be printed or logged."""
        console = self.engine.http.console
        found = [s for s in (self.nats.password, self.nats.token, console.admin_password,
                             console.viewer_password) if s]
        for url in self.nats.servers:
            if "://" in url and "@" in url:
                parts = urlsplit(url)
                secret = parts.password if parts.password is not None else parts.username
                if secret:
                    found.append(secret)
        return found

    def masked(self) -> dict[str, Any]:
        """The configuration in the file's own shape (so it is a valid grctl.yaml again), every
        default filled in, unset keys left out and every secret replaced by a mask."""
        data = _drop_none(msgspec.to_builtins(self))
        data.pop("path", None)
        nats = data["nats"]
        for key in ("password", "token"):
            if key in nats:
                nats[key] = MASK
        nats["servers"] = [mask_url(u) for u in nats["servers"]]
        nats["reconnect"] = {
            "max_attempts": nats.pop("max_reconnect_attempts"),
            "wait": nats.pop("reconnect_wait"),
        }
        if "embedded" in nats:
            nats.pop("servers")
        console = data["engine"]["http"]["console"]
        for key in ("admin_password", "viewer_password"):
            if key in console:
                console[key] = MASK
        for key in ("max_bytes", "max_msg_size"):  # -1: no limit, which the file says by leaving it out
            if data["engine"].get(key) == -1:
                data["engine"].pop(key)
        data["schedules"] = {i: _schedule_keys(spec) for i, spec in self.schedules.items()}
        if not data["schedules"]:
            data.pop("schedules")
        return data


def _schedule_keys(spec: ScheduleSpec) -> dict[str, Any]:
    """A schedule as the file writes it, every default filled in (cron or every, whichever is set)."""
    keys = {f: getattr(spec, f) for f in spec.__struct_fields__}
    keys.pop("every" if spec.cron else "cron")
    return {k: msgspec.to_builtins(v) for k, v in keys.items() if v is not None}


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def mask_url(url: str) -> str:
    """``nats://user:secret@host`` → ``nats://user:********@host``; a lone ``token@`` is masked too."""
    if "://" not in url or "@" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[1]
    userinfo = MASK if parts.password is None else f"{parts.username}:{MASK}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
