"""From schema-valid data to a DaemonConfig: defaults, absolute paths, secrets read from files, and the
checks a schema cannot express (files exist, one way to authenticate, TLS files load)."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path as FsPath
from typing import Any

from grctl import settings
from grctl.console.settings import ConsoleSettings
from grctl.daemon.errors import ConfigError, Problem
from grctl.daemon.model import (
    DaemonConfig,
    EmbeddedNats,
    EngineConfig,
    EngineHttpConfig,
    HttpConfig,
    LoggingConfig,
    NatsConfig,
    ReloadConfig,
    TLSConfig,
    WorkerConfig,
    WorkflowLoggerConfig,
)
from grctl.daemon.schedule_config import resolve_schedules
from grctl.daemon.schema import parse_duration, parse_retention, parse_size, parse_sync_interval
from grctl.daemon.yamlmarks import Path
from grctl.nats.server_config import SYNC_ALWAYS, sync_interval_text, top_level_keys
from grctl.ops.listen import parse_listen

Locate = Callable[[Path, str, bool], Problem]
_SEED_LINE = re.compile(r"^\s*S[A-Z][A-Z2-7]{56}\s*$", re.MULTILINE)
_AUTH_KEYS = ("user", "token", "token_file", "nkey_seed_file", "credentials_file")


class Resolver:
    def __init__(
        self,
        data: dict[str, Any],
        source: str,
        base: FsPath,
        environ: Mapping[str, str],
        origins: dict[Path, str],
        locate: Locate,
        daemon: bool = True,
    ) -> None:
        self.data = data
        self.daemon = daemon  # grctld itself (it must have something to run), or grctl reading the file
        self.source = source
        self.base = base
        self.environ = environ
        self.origins = origins
        self.locate = locate
        self.problems: list[Problem] = []

    def fail(self, path: Path, message: str) -> None:
        self.problems.append(self.locate(path, message, False))

    def build(self) -> DaemonConfig:
        d = self.data
        source = FsPath(self.source)
        config = DaemonConfig(
            path=str(source.resolve()) if source.is_file() else self.source,
            workflows=list(d.get("workflows", [])),
            python_path=[
                self.directory(("python_path", i), p) for i, p in enumerate(d.get("python_path", []))
            ],
            nats=self.nats(d.get("nats", {})),
            logging=self.logging(d.get("logging", {})),
            shutdown_timeout=self.duration(d, "shutdown_timeout", settings.SHUTDOWN_TIMEOUT),
            worker=self.worker(d.get("worker", {})),
            reload=ReloadConfig(**d.get("reload", {})),
            engine=self.engine(d.get("engine", {})),
            http=HttpConfig(**d.get("http", {})),
            schedules=resolve_schedules(d.get("schedules", {}), self.fail),
        )
        if self.daemon and not config.workflows and not config.engine.embedded:
            self.fail(("workflows",), "nothing to run: list workflow modules, or set engine.embedded: true "
                                      "for an engine-only node")
        if self.problems:
            raise ConfigError(self.problems)
        return config

    # -- values -------------------------------------------------------------------------------------

    def duration(self, section: dict[str, Any], key: str, default: float | None) -> Any:
        value = section.get(key)
        return default if value is None else parse_duration(value)

    def path(self, value: str) -> str:
        return str((self.base / os.path.expanduser(value)).resolve())

    def directory(self, where: Path, value: str) -> str:
        resolved = self.path(value)
        if not os.path.isdir(resolved):
            self.fail(where, f"directory not found: {resolved}")
        return resolved

    def file(self, where: Path, value: str | None, secret: bool = False) -> str | None:
        """An existing, readable file; secret files named relatively are looked for in
        $CREDENTIALS_DIRECTORY first (systemd LoadCredential=)."""
        if value is None:
            return None
        resolved = self.path(value)
        cred_dir = self.environ.get("CREDENTIALS_DIRECTORY")
        if secret and cred_dir and not os.path.isabs(value):
            candidate = os.path.join(cred_dir, value)
            if os.path.exists(candidate):
                resolved = candidate
        if not os.path.exists(resolved):
            self.fail(where, f"file not found: {resolved}")
            return None
        if os.path.isdir(resolved):
            self.fail(where, f"is a directory, not a file: {resolved}")
            return None
        if not os.access(resolved, os.R_OK):
            self.fail(where, f"file not readable: {resolved}")
            return None
        return resolved

    def secret(self, section: dict[str, Any], key: str, where: tuple[str, ...] = ("nats",)) -> str | None:
        """``key`` given directly, or read from ``key_file`` (trailing newline removed); ``where``: the
        section's path, for the error messages."""
        direct, from_file = section.get(key), section.get(f"{key}_file")
        name = ".".join(where)
        if direct is not None and from_file is not None:
            self.fail((*where, f"{key}_file"), f"cannot be combined with {name}.{key} (give the {key} once)")
            return None
        if from_file is None:
            return direct
        found = self.file((*where, f"{key}_file"), from_file, secret=True)
        if found is None:
            return None
        with open(found, encoding="utf-8") as fh:
            value = fh.read().rstrip("\r\n")
        if not value:
            self.fail((*where, f"{key}_file"), f"the file is empty: {found}")
        return value

    def engine_http(self, h: dict[str, Any]) -> EngineHttpConfig:
        c = h.get("console", {})
        where = ("engine", "http", "console")
        console = ConsoleSettings(enabled=c.get("enabled", True),
                                  admin_password=self.secret(c, "admin_password", where),
                                  viewer_password=self.secret(c, "viewer_password", where),
                                  path_prefix=c.get("path_prefix", ""))
        config = EngineHttpConfig(listen=h.get("listen"), console=console)
        if config.listen:
            try:
                console.check(parse_listen(config.listen))
            except ValueError as exc:
                self.fail(("engine", "http", "listen"), str(exc))
        return config

    # -- sections -----------------------------------------------------------------------------------

    def nats(self, n: dict[str, Any]) -> NatsConfig:
        self.check_auth(n)
        embedded = self.embedded(n.get("embedded", False))
        servers = n.get("servers") or list(settings.NATS_SERVERS)
        if embedded is not None:
            if "servers" in n and ("nats", "servers") not in self.origins:
                self.fail(
                    ("nats", "servers"),
                    "cannot be combined with nats.embedded (the workers connect to the embedded server)",
                )
            servers = [embedded.url]
        password = self.secret(n, "password")
        token = self.secret(n, "token")
        if password is not None and "user" not in n:
            self.fail(("nats", "password"), "needs nats.user")
        reconnect = n.get("reconnect", {})
        return NatsConfig(
            servers=servers,
            name=n.get("name", "grctld"),
            credentials_file=self.creds(n.get("credentials_file")),
            nkey_seed_file=self.seed(n.get("nkey_seed_file")),
            user=n.get("user"),
            password=password,
            token=token,
            tls=self.tls(n["tls"]) if "tls" in n else None,
            connect_timeout=self.duration(n, "connect_timeout", settings.CONNECT_TIMEOUT),
            max_reconnect_attempts=reconnect.get("max_attempts", settings.MAX_RECONNECT_ATTEMPTS),
            reconnect_wait=self.duration(reconnect, "wait", settings.RECONNECT_WAIT),
            embedded=embedded,
        )

    def check_auth(self, n: dict[str, Any]) -> None:
        given = [k for k in _AUTH_KEYS if k in n]
        if "token" in n and "token_file" in n:
            given.remove("token_file")
        for extra in given[1:]:
            first = given[0].removesuffix("_file") if given[0] == "token_file" else given[0]
            self.fail(
                ("nats", extra), f"cannot be combined with nats.{first} (choose one way to authenticate)"
            )

    def creds(self, value: str | None) -> str | None:
        found = self.file(("nats", "credentials_file"), value, secret=True)
        if found is not None:
            with open(found, encoding="utf-8", errors="replace") as fh:
                if "BEGIN NATS USER JWT" not in fh.read():
                    self.fail(
                        ("nats", "credentials_file"), f"not a NATS credentials file (no user JWT): {found}"
                    )
        return found

    def seed(self, value: str | None) -> str | None:
        found = self.file(("nats", "nkey_seed_file"), value, secret=True)
        if found is not None:
            with open(found, encoding="utf-8", errors="replace") as fh:
                if not _SEED_LINE.search(fh.read()):
                    self.fail(
                        ("nats", "nkey_seed_file"), f"no nkey seed (a line starting with 'SU') in {found}"
                    )
        return found

    def tls(self, t: dict[str, Any]) -> TLSConfig | None:
        at = ("nats", "tls")
        cfg = TLSConfig(
            ca_file=self.file((*at, "ca_file"), t.get("ca_file")),
            cert_file=self.file((*at, "cert_file"), t.get("cert_file")),
            key_file=self.file((*at, "key_file"), t.get("key_file"), secret=True),
            server_name=t.get("server_name"),
            handshake_first=t.get("handshake_first", False),
        )
        if ("cert_file" in t) != ("key_file" in t):
            missing = "key_file" if "cert_file" in t else "cert_file"
            self.fail(at, f"cert_file and key_file go together: {missing} is missing")
            return None
        if not self.problems:
            try:
                cfg.context()
            except (ssl.SSLError, OSError) as exc:
                self.fail(at, f"cannot load the TLS files: {exc}")
        return cfg

    def embedded(self, e: bool | dict[str, Any]) -> EmbeddedNats | None:
        if e is False:
            return None
        e = {} if e is True else e
        config_file = self.file(("nats", "embedded", "config_file"), e.get("config_file"))
        store = self.path(e["store_dir"]) if "store_dir" in e else None
        return EmbeddedNats(
            host=e.get("host", settings.EMBEDDED_NATS_HOST),
            port=e.get("port", settings.NATS_PORT),
            store_dir=store,
            config_file=config_file,
            sync_interval=self.sync_interval(e, config_file),
        )

    def sync_interval(self, e: dict[str, Any], config_file: str | None) -> str | None:
        """What grctld writes into the embedded server's configuration; None when the operator's
        config_file has its own jetstream block (which would replace grctld's, blocks do not merge)."""
        own_block = False
        if config_file is not None:
            try:
                own_block = "jetstream" in top_level_keys(config_file)
            except OSError as exc:
                self.fail(("nats", "embedded", "config_file"), f"cannot read an included file: {exc}")
        if own_block:
            if "sync_interval" in e:
                self.fail(("nats", "embedded", "sync_interval"),
                          f"{config_file} has its own jetstream block, which replaces the one grctld writes: "
                          "set sync_interval in that block instead")
            return None
        return sync_interval_text(parse_sync_interval(e.get("sync_interval", SYNC_ALWAYS)))

    def logging(self, lg: dict[str, Any]) -> LoggingConfig:
        dest = lg.get("destination", "stderr")
        if dest not in ("stderr", "stdout"):
            dest = self.path(dest)
            parent = os.path.dirname(dest)
            if not os.path.isdir(parent):
                self.fail(("logging", "destination"), f"directory not found: {parent}")
        wl = lg.get("workflow_logger", {})
        return LoggingConfig(
            level=lg.get("level", "info"),
            format=lg.get("format", "text"),
            destination=dest,
            workflow_logger=WorkflowLoggerConfig(
                name=wl.get("name", "grctl.workflow"), level=wl.get("level")
            ),
        )

    def worker(self, w: dict[str, Any]) -> WorkerConfig:
        return WorkerConfig(
            max_concurrent_steps=w.get("max_concurrent_steps", settings.MAX_CONCURRENT_STEPS),
            processes=w.get("processes", settings.WORKER_PROCESSES),
            ready_timeout=self.duration(w, "ready_timeout", settings.READY_TIMEOUT),
        )

    def engine(self, e: dict[str, Any]) -> EngineConfig:
        config = EngineConfig(
            embedded=e.get("embedded", False),
            step_timeout=self.duration(e, "step_timeout", None),
            wait_timeout=self.duration(e, "wait_timeout", None),
            retention=parse_retention(e["retention"]) if "retention" in e else settings.RETENTION,
            replicas=e.get("replicas", settings.REPLICAS),
            max_bytes=parse_size(e["max_bytes"]) if "max_bytes" in e else -1,
            max_msg_size=parse_size(e["max_msg_size"]) if "max_msg_size" in e else -1,
            duplicate_window=self.duration(e, "duplicate_window", settings.DUPLICATE_WINDOW),
            http=self.engine_http(e.get("http", {})),
        )
        try:
            config.stream_settings()
        except ValueError as exc:
            key = next((k for k in ("replicas", "max_bytes", "max_msg_size", "duplicate_window")
                        if str(exc).startswith(k)), "replicas")
            self.fail(("engine", key), str(exc).removeprefix(f"{key} "))
        return config
