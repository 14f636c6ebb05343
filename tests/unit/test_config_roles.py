"""grctl.yaml beyond one node: the engine's stream settings, the embedded server's sync interval, files
without workflows (engine-only nodes, grctl -c), and the configuration grctl builds from the environment
alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from grctl.daemon.config import Overrides, load_config, load_environment
from grctl.daemon.errors import ConfigError
from grctl.daemon.model import DaemonConfig
from grctl.nats.stream_settings import StreamSettings


def write(tmp_path: Path, text: str, name: str = "grctl.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def problems(path: str, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={}, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


def test_engine_stream_settings(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "engine:\n  embedded: true\n  replicas: 3\n  max_bytes: 50GiB\n"
                                      "  max_msg_size: 2MB\n  duplicate_window: 5m\n"), environ={})
    assert cfg.workflows == []  # an engine-only node
    assert cfg.engine.stream_settings() == StreamSettings(replicas=3, max_bytes=50 * 2**30,
                                                          max_msg_size=2_000_000, duplicate_window=300.0)
    default = load_config(write(tmp_path, "workflows: [grctl.demo]\n"), environ={}).engine.stream_settings()
    assert default == StreamSettings()


@pytest.mark.parametrize(("text", "where", "message"), [
    ("engine: {embedded: true, replicas: 7}\n", "engine.replicas", "must be at most 5"),
    ("engine: {embedded: true, max_bytes: 10 apples}\n", "engine.max_bytes", "not a valid size"),
    ("engine: {embedded: true, duplicate_window: 10s}\n", "engine.duplicate_window", "at least 30s"),
    ("engine: {embedded: true, duplicate_window: 10}\n", "engine.duplicate_window", "at least 30"),
])
def test_bad_engine_settings_are_located(tmp_path: Path, text: str, where: str, message: str) -> None:
    found = problems(write(tmp_path, text))
    assert "grctl.yaml:1:" in found and where in found and message in found, found


def test_a_daemon_needs_something_to_run_but_grctl_reading_the_file_does_not(tmp_path: Path) -> None:
    path = write(tmp_path, "nats:\n  servers: [nats://n1:4222, nats://n2:4222]\n")
    assert "nothing to run" in problems(path)
    cfg = load_config(path, environ={}, daemon=False)
    assert cfg.nats.servers == ["nats://n1:4222", "nats://n2:4222"] and cfg.workflows == []


def test_embedded_sync_interval(tmp_path: Path) -> None:
    def embedded(text: str) -> str | None:
        cfg = load_config(write(tmp_path, "workflows: [grctl.demo]\nnats:\n  embedded:\n" + text), environ={})
        assert cfg.nats.embedded is not None
        return cfg.nats.embedded.sync_interval

    assert embedded("    port: 4225\n") == "always"  # the default: fsync after every write
    assert embedded("    sync_interval: 2m\n") == "120000ms"
    assert embedded("    sync_interval: 1.5\n") == "1500ms"
    assert "not a valid sync interval" in problems(write(
        tmp_path, "workflows: [grctl.demo]\nnats:\n  embedded:\n    sync_interval: sometimes\n"))
    # the operator's file with its own jetstream block decides, and saying it twice is an error
    (tmp_path / "limits.conf").write_text("jetstream {\n  max_file_store: 1G\n  sync_interval: 10s\n}\n")
    assert embedded("    config_file: limits.conf\n") is None
    found = problems(write(tmp_path, "workflows: [grctl.demo]\nnats:\n  embedded:\n"
                                     "    config_file: limits.conf\n    sync_interval: always\n"))
    assert "nats.embedded.sync_interval" in found and "has its own jetstream block" in found
    (tmp_path / "accounts.conf").write_text("accounts { A { jetstream: enabled } }\n")
    assert embedded("    config_file: accounts.conf\n") == "always"


def test_print_config_is_a_valid_file_again(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "workflows: [grctl.demo]\nengine: {embedded: true, replicas: 3}\n"
                                      "nats:\n  embedded: {sync_interval: 30s}\n"), environ={})
    again = write(tmp_path, yaml.safe_dump(cfg.masked()), "again.yaml")
    assert load_config(again, environ={}) == DaemonConfig.decode(
        cfg.encode().replace(cfg.path.encode(), str(Path(again).resolve()).encode()))


def test_the_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    env = {"GRCTL_NATS_SERVERS": "nats://a:4222,nats://b:4222", "GRCTL_NATS_USER": "alice",
           "GRCTL_NATS_PASSWORD": "secret"}
    cfg = load_environment(env)
    assert cfg.nats.servers == ["nats://a:4222", "nats://b:4222"]
    assert cfg.nats.auth_options() == {"user": "alice", "password": "secret"}
    assert load_environment({}).nats.servers == ["nats://localhost:4225"]
    flagged = load_environment(env, Overrides(nats_servers=("nats://c:4222",)))
    assert flagged.nats.servers == ["nats://c:4222"]
    with pytest.raises(ConfigError) as bad_tls:  # TLS files from the environment are checked like the file's
        load_environment({"GRCTL_NATS_TLS_CA_FILE": "ca.pem"})
    assert "environment GRCTL_NATS_TLS_CA_FILE" in str(bad_tls.value)
    assert "cannot load the TLS files" in str(bad_tls.value)


def test_the_cluster_examples_are_valid(tmp_path: Path) -> None:
    """docs/examples: the engine and worker host files load as grctld would load them (the password as
    systemd hands it over). tests/daemon/test_deployment_guide.py runs
    them, with the NATS nodes' files."""
    examples = Path(__file__).resolve().parents[2] / "docs" / "examples"
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "grctl_nats-password").write_text("secret\n")
    (creds / "grctl_console-admin").write_text("admin-password-of-the-console\n")
    (creds / "grctl_console-viewer").write_text("viewer-password-of-the-console\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    loaded = {}
    for role in ("engine", "worker"):
        # the CA is a real one in the guide's test; here only its place is checked
        text = (examples / f"grctl-{role}.yaml").read_text()
        assert "ca_file: /etc/grctl/ca.pem" in text
        text = text.replace("  tls:\n    ca_file: /etc/grctl/ca.pem", "")
        (tmp_path / f"{role}.yaml").write_text(text)
        loaded[role] = load_config(str(tmp_path / f"{role}.yaml"), environ=env)
        assert loaded[role].nats.user == f"grctl-{role}" and loaded[role].nats.password == "secret"
    engine, worker = loaded["engine"], loaded["worker"]
    assert engine.workflows == [] and engine.engine.embedded and engine.engine.replicas == 3
    assert len(engine.nats.servers) == 3 and all(s.startswith("tls://") for s in engine.nats.servers)
    assert worker.workflows and not worker.engine.embedded and worker.nats.servers == engine.nats.servers
