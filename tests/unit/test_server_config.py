"""The generated nats-server configuration: the sync interval, the operator's file included, and the
detection of the operator's own top-level ``jetstream`` block (which would replace ours)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from grctl.nats.server import find_nats_server
from grctl.nats.server_config import render, sync_interval_text, top_level_keys


def test_sync_interval_text() -> None:
    assert sync_interval_text(None) == "always"
    assert sync_interval_text(120) == "120000ms"
    assert sync_interval_text(0.25) == "250ms"
    with pytest.raises(ValueError):
        sync_interval_text(0)


def test_top_level_keys_ignore_nesting_comments_and_strings_and_follow_includes(tmp_path: Path) -> None:
    (tmp_path / "limits.conf").write_text("jetstream {\n  max_file_store: 1G\n}\n")
    (tmp_path / "main.conf").write_text(
        "# jetstream { in a comment\n"
        "accounts {\n  A { jetstream: enabled, users: [ {user: a, password: \"p{w\"} ] }\n}\n"
        "max_payload: 2MB // jetstream too\n"
        "include './limits.conf'\n"
    )
    assert top_level_keys(tmp_path / "main.conf") == {"accounts", "max_payload", "jetstream"}
    (tmp_path / "plain.conf").write_text("accounts {\n  A { jetstream: enabled }\n}\n")
    assert top_level_keys(tmp_path / "plain.conf") == {"accounts"}


def test_include_cycles_end(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text('include "b.conf"\nport: 1\n')
    (tmp_path / "b.conf").write_text('include "a.conf"\nhttp: 2\n')
    assert top_level_keys(tmp_path / "a.conf") == {"port", "http"}


def test_render_is_a_valid_server_configuration(tmp_path: Path) -> None:
    user = tmp_path / "user conf.conf"
    user.write_text("max_payload: 2MB\n")
    (tmp_path / "gen").mkdir()
    text = render("always", user, tmp_path / "gen")
    assert "sync_interval: always" in text and 'include "../user conf.conf"' in text
    assert render(None, None).count("jetstream") == 0
    with pytest.raises(ValueError):
        render("sometimes", None)
    try:
        binary = find_nats_server()
    except FileNotFoundError:
        pytest.skip("nats-server is not installed")
    generated = tmp_path / "gen" / "generated.conf"
    generated.write_text(render("30s", user, generated.parent))
    test = subprocess.run([binary, "-c", str(generated), "-t"], capture_output=True, text=True, timeout=30)
    assert test.returncode == 0, test.stderr
