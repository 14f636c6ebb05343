"""grctl.settings is the one home of every default, limit and backoff: each entry says its unit and
why, and the places that state a default to people (the JSON Schema's ``default``s, grctl.yaml.example,
the command line's help) agree with it."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from grctl import settings
from grctl.daemon.schema import parse_duration, parse_retention

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "grctl" / "settings.py"
SCHEMA = ROOT / "grctl" / "schemas" / "grctl.schema.json"
EXAMPLE = ROOT / "grctl.yaml.example"
UNITS = {"s", "ms", "port", "URLs", "address", "count", "copies", "bytes", "messages", "requests",
         "runs", "run infos", "steps", "processes", "directives", "batches", "factor", "zone",
         "choice"}

# grctl.yaml key → the setting that is its default, and how the file writes values of that key.
FILE_DEFAULTS: dict[tuple[str, ...], tuple[Any, Any]] = {
    ("shutdown_timeout",): (settings.SHUTDOWN_TIMEOUT, parse_duration),
    ("nats", "connect_timeout"): (settings.CONNECT_TIMEOUT, parse_duration),
    ("nats", "reconnect", "max_attempts"): (settings.MAX_RECONNECT_ATTEMPTS, int),
    ("nats", "reconnect", "wait"): (settings.RECONNECT_WAIT, parse_duration),
    ("nats", "embedded", "host"): (settings.EMBEDDED_NATS_HOST, str),
    ("nats", "embedded", "port"): (settings.NATS_PORT, int),
    ("worker", "max_concurrent_steps"): (settings.MAX_CONCURRENT_STEPS, int),
    ("worker", "processes"): (settings.WORKER_PROCESSES, int),
    ("worker", "ready_timeout"): (settings.READY_TIMEOUT, parse_duration),
    ("engine", "step_timeout"): (settings.ENGINE_STEP_TIMEOUT, parse_duration),
    ("engine", "wait_timeout"): (settings.ENGINE_WAIT_TIMEOUT, parse_duration),
    ("engine", "replicas"): (settings.REPLICAS, int),
    ("engine", "duplicate_window"): (settings.DUPLICATE_WINDOW, parse_duration),
    ("engine", "retention"): (settings.RETENTION, parse_retention),
}


def test_every_setting_says_its_unit_and_why() -> None:
    source = SETTINGS.read_text().splitlines()
    entries = [node for node in ast.parse(SETTINGS.read_text()).body
               if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)]
    assert len(entries) > 50  # the check below is not vacuous
    wrong = []
    for node in entries:
        line = source[node.lineno - 1]
        comment = line.partition("  # ")[2]
        unit, _, reason = comment.partition("; ")
        if unit not in UNITS or len(reason.split()) < 2:
            wrong.append(line)
    assert wrong == []


def schema_defaults() -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, sub in node.get("properties", {}).items():
            if "default" in sub:
                found[(*path, key)] = sub["default"]
            walk(sub, (*path, key))

    walk(json.loads(SCHEMA.read_text()), ())
    return found


def test_the_schema_defaults_are_the_settings() -> None:
    found = schema_defaults()
    assert set(found) == set(FILE_DEFAULTS)  # every stated default is checked, every checked one stated
    wrong = {path: value for path, value in found.items()
             if FILE_DEFAULTS[path][1](value) != FILE_DEFAULTS[path][0]}
    assert wrong == {}


def test_the_example_file_shows_the_settings() -> None:
    text = EXAMPLE.read_text()
    data = yaml.safe_load(text)
    wrong = {}
    for path, (expected, parse) in FILE_DEFAULTS.items():
        node: Any = data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:  # shown commented out: "  # step_timeout: 5m"
            m = re.search(rf"^\s*# {path[-1]}: (\S+)$", text, re.MULTILINE)
            assert m, path
            node = m.group(1)
        if parse(node) != expected:
            wrong[path] = node
    assert wrong == {}


def test_the_command_line_help_states_the_settings() -> None:
    out = subprocess.run([sys.executable, "-m", "grctl", "engine", "--help"], capture_output=True, text=True,
                         check=True, env={"COLUMNS": "400", "PATH": ""}).stdout
    assert f"else {settings.ENGINE_STEP_TIMEOUT:g})" in out
    assert f"else {settings.ENGINE_WAIT_TIMEOUT:g})" in out
    assert f"(default {settings.DUPLICATE_WINDOW:g}, at least {settings.MIN_DUPLICATE_WINDOW:g})" in out
    retention = re.search(r"engine\.retention, else (\S+)\)", out)
    assert retention and parse_retention(retention.group(1)) == settings.RETENTION
