"""Loading grctl.yaml: defaults, precedence, secrets, masking, the schema and the example file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from grctl.daemon.cli import main
from grctl.daemon.config import Overrides, load_config
from grctl.daemon.errors import ConfigError
from grctl.daemon.model import MASK
from grctl.daemon.schema import check_nats_url, load_schema, parse_duration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "grctl.yaml.example"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "grctl.yaml"
    path.write_text(text)
    return str(path)


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "workflows: [grctl.demo]\n"), environ={})
    assert cfg.nats.servers == ["nats://localhost:4225"]
    assert cfg.nats.max_reconnect_attempts == -1  # never gives up by default
    assert cfg.shutdown_timeout == 30.0
    assert cfg.worker.processes == 1 and cfg.worker.max_concurrent_steps == 16
    assert cfg.reload.watch_config is True and cfg.reload.watch_workflows is False
    assert cfg.logging.level == "info" and cfg.logging.format == "text"
    assert cfg.engine.embedded is False and cfg.nats.embedded is None


def test_precedence_defaults_file_environment_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "workflows: [grctl.demo]\nnats: {servers: ['nats://file:1']}\n"
        "logging: {level: warning}\nshutdown_timeout: 2m\n",
    )
    assert load_config(path, environ={}).nats.servers == ["nats://file:1"]
    env = {
        "GRCTL_NATS_SERVERS": "nats://env1:2, nats://env2:3",
        "GRCTL_LOG_LEVEL": "DEBUG",
        "GRCTL_SHUTDOWN_TIMEOUT": "45",
    }
    cfg = load_config(path, environ=env)
    assert cfg.nats.servers == ["nats://env1:2", "nats://env2:3"]
    assert cfg.logging.level == "debug" and cfg.shutdown_timeout == 45.0
    flags = Overrides(log_level="error", nats_servers=("nats://flag:4",))
    cfg = load_config(path, environ=env, overrides=flags)
    assert cfg.nats.servers == ["nats://flag:4"] and cfg.logging.level == "error"
    assert load_config(path, environ={"ENGINE_NATS_SERVERS": '["nats://json:5"]'}).nats.servers == [
        "nats://json:5"
    ]
    assert load_config(path, environ={"grctl_NATS_SERVERS": "nats://lower:6"}).nats.servers == [
        "nats://lower:6"
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"GRCTL_WORKER_PROCESSES": "many"},
            "environment GRCTL_WORKER_PROCESSES: worker.processes: "
            "expected an integer, got a string ('many')",
        ),
        (
            {"GRCTL_NATS_SERVERS": "nats//x"},
            "environment GRCTL_NATS_SERVERS: nats.servers[0]: 'nats//x' is not a valid NATS URL",
        ),
        (
            {"GRCTL_SHUTDOWN_TIMEOUT": "later"},
            "environment GRCTL_SHUTDOWN_TIMEOUT: shutdown_timeout: 'later'",
        ),
        ({"GRCTL_LOG_FORMAT": "xml"}, "environment GRCTL_LOG_FORMAT: logging.format: 'xml' is not one of"),
    ],
)
def test_environment_errors_name_the_variable(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "workflows: [grctl.demo]\n"), environ=env)
    assert str(info.value).startswith(expected), str(info.value)


def test_flag_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            write(tmp_path, "workflows: [grctl.demo]\n"),
            environ={},
            overrides=Overrides(nats_servers=("http://x",)),
        )
    assert str(info.value).startswith("--nats-server: nats.servers[0]: 'http://x' is not a valid NATS URL")


def test_secrets_from_files_and_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret-from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "tok").write_text("token-from-credentials-dir")
    (tmp_path / "tok").write_text("not this one")
    cfg = load_config(
        write(tmp_path, "workflows: [grctl.demo]\nnats: {user: u, password_file: pw}\n"), environ={}
    )
    assert cfg.nats.password == "s3cret-from-file"
    cfg = load_config(
        write(tmp_path, "workflows: [grctl.demo]\nnats: {token_file: tok}\n"),
        environ={"CREDENTIALS_DIRECTORY": str(creds)},
    )
    assert cfg.nats.token == "token-from-credentials-dir"
    cfg = load_config(
        write(tmp_path, "workflows: [grctl.demo]\nnats: {user: u}\n"),
        environ={"GRCTL_NATS_PASSWORD": "from-env"},
    )
    assert cfg.nats.password == "from-env" and cfg.nats.connect_options()["password"] == "from-env"


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "store").mkdir()
    cfg = load_config(
        write(
            tmp_path,
            "workflows: [grctl.demo]\npython_path: [src]\n"
            "nats: {embedded: {store_dir: store, port: 4999}}\n"
            "logging: {destination: grctld.log}\n",
        ),
        environ={},
    )
    assert cfg.python_path == [str(tmp_path / "src")]
    assert cfg.nats.embedded is not None and cfg.nats.embedded.store_dir == str(tmp_path / "store")
    assert cfg.nats.servers == ["nats://127.0.0.1:4999"]
    assert cfg.logging.destination == str(tmp_path / "grctld.log")


def test_print_config_masks_secrets_and_is_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRCTL_NATS_SERVERS", raising=False)
    monkeypatch.setenv("GRCTL_NATS_PASSWORD", "env-pass-123")
    path = write(
        tmp_path,
        "workflows: [grctl.demo]\nnats:\n  servers: ['nats://bob:url-pass-456@h:4222']\n  user: bob\n",
    )
    assert main(["-c", path, "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "env-pass-123" not in out and "url-pass-456" not in out
    assert MASK in out
    printed = tmp_path / "printed.yaml"
    printed.write_text(out)
    monkeypatch.delenv("GRCTL_NATS_PASSWORD")
    again = load_config(str(printed), environ={})
    assert again.nats.user == "bob" and again.nats.password == MASK


def test_durations_and_urls() -> None:
    assert parse_duration("30s") == 30 and parse_duration("2m") == 120 and parse_duration(7) == 7
    assert parse_duration("1m30s") == 90 and parse_duration("250ms") == 0.25 and parse_duration("1h") == 3600
    assert parse_duration("1.5") == 1.5
    for bad in ("", "5x", "s", "1s2", "-1s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for good in ("nats://a:4222", "tls://a.b.c", "ws://[::1]:80", "wss://u:p@h:443", "localhost:4222"):
        check_nats_url(good)
    for bad in ("nats//x", "http://a", "nats://", "nats://a:0", "nats://a/path"):
        with pytest.raises(ValueError):
            check_nats_url(bad)


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if "properties" in schema:
        found.append((path, schema))
    for name, sub in schema.get("properties", {}).items():
        found += _objects(sub, f"{path}.{name}" if path else name)
    items = schema.get("items")
    if isinstance(items, dict):
        found += _objects(items, path + "[]")
    return found


def test_schema_is_strict_and_described() -> None:
    schema = load_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    for path, obj in _objects(schema):
        assert obj.get("additionalProperties") is False, path or "top level"
        for name, sub in obj["properties"].items():
            assert sub.get("description"), f"{path}.{name} has no description"
    # the single copy: the top-level schemas/ entry is the file shipped in the package
    top = ROOT / "schemas" / "grctl.schema.json"
    assert top.resolve() == (ROOT / "grctl" / "schemas" / "grctl.schema.json").resolve()
    assert json.loads(top.read_text()) == schema


def test_example_starts_with_the_modeline_and_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./schemas/grctl.schema.json"
    keys = set(re.findall(r"^[#\s]*([a-z_]+):", text, flags=re.MULTILINE))
    missing = []
    for path, obj in _objects(load_schema()):
        for name in obj["properties"]:
            if name not in keys:
                missing.append(f"{path}.{name}")
    assert not missing, f"grctl.yaml.example does not mention: {missing}"
    assert isinstance(yaml.safe_load(text), dict)


def test_example_is_valid_and_runs_embedded_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRCTL_NATS_SERVERS", raising=False)
    cfg = load_config(str(EXAMPLE), environ={})
    assert cfg.nats.embedded is not None and cfg.engine.embedded is True
    assert cfg.workflows == ["grctl.demo"]


def test_engine_retention(tmp_path: Path) -> None:
    def retention(value: str | None) -> float:
        text = "workflows: [grctl.demo]\n" + (f"engine: {{retention: {value}}}\n" if value else "")
        return load_config(write(tmp_path, text), environ={}).engine.retention

    assert retention(None) == 7 * 86400  # the default: a week
    assert retention("12h") == 43200 and retention("90") == 90
    assert retention("forever") == 0 and retention("0") == 0  # kept for ever
    with pytest.raises(ConfigError) as err:
        retention("soon")
    assert "engine.retention" in str(err.value) and "is not a valid retention" in str(err.value)
