"""Malformed configuration files: each gives one clear line ``file:line:col: ...`` and exit code 1.

Each case names the token the location must point at, so a wrong line or column fails the test.
The files go through the real command-line entry point (``grctld --check-config``) in-process; a few
also through a real subprocess in tests/daemon.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grctl.daemon.cli import main

GOOD_HEAD = "workflows:\n  - grctl.demo\n"

# (id, file text, expected token at the reported position, expected words in the message)
CASES: list[tuple[str, str, str, str]] = [
    ("syntax-unclosed-flow", "workflows: [grctl.demo\nnats: {}\n", ": {}", "expected ',' or ']'"),
    ("syntax-bad-indent", "workflows:\n  - grctl.demo\n bad: 1\n", "bad", "YAML syntax error"),
    ("syntax-tab", "workflows:\n\t- grctl.demo\n", "\t", "tab character"),
    ("syntax-unclosed-quote", 'workflows: ["grctl.demo]\n', "", "quoted scalar"),
    ("syntax-mapping-in-scalar", "workflows: a: b\n", ": b", "mapping values are not allowed"),
    (
        "duplicate-top-key",
        GOOD_HEAD + "workflows:\n  - grctl.demo\n",
        "workflows",
        "duplicate key 'workflows'",
    ),
    (
        "console-open-on-the-network",
        GOOD_HEAD + "engine:\n  embedded: true\n  http:\n    listen: 0.0.0.0:9465\n",
        "0.0.0.0:9465",
        "the console would be open to the network",
    ),
    (
        "console-password-twice",
        GOOD_HEAD + "engine:\n  http:\n    console:\n      admin_password: long-enough\n"
        "      admin_password_file: notes.txt\n",
        "notes.txt",
        "cannot be combined with engine.http.console.admin_password",
    ),
    (
        "console-short-password",
        GOOD_HEAD + "engine:\n  http:\n    console:\n      viewer_password: short\n",
        "short",
        "too short",
    ),
    (
        "duplicate-nested-key",
        GOOD_HEAD + "nats:\n  name: a\n  name: b\n",
        "name: b",
        "nats: duplicate key 'name'",
    ),
    (
        "unknown-top-key",
        GOOD_HEAD + "shutdown_timout: 5s\n",
        "shutdown_timout",
        "did you mean 'shutdown_timeout'",
    ),
    ("unknown-nested-key", GOOD_HEAD + "nats:\n  severs: [nats://a:1]\n", "severs", "did you mean 'servers'"),
    ("misplaced-key", GOOD_HEAD + "servers: [nats://a:1]\n", "servers", "belongs under 'nats'"),
    ("unknown-deep-key", GOOD_HEAD + "nats:\n  tls:\n    ca: x\n", "ca:", "nats.tls: unknown key 'ca'"),
    ("workflows-not-list", "workflows: grctl.demo\n", "grctl.demo", "expected a list, got a string"),
    (
        "servers-not-list",
        GOOD_HEAD + "nats:\n  servers: nats://a:4222\n",
        "nats://a",
        "nats.servers: expected a list",
    ),
    (
        "bad-url-no-scheme-colon",
        GOOD_HEAD + "nats:\n  servers: ['nats//x']\n",
        "'nats//x'",
        "nats.servers[0]: 'nats//x' is not a valid NATS URL",
    ),
    (
        "bad-url-scheme",
        GOOD_HEAD + "nats:\n  servers:\n    - http://a:4222\n",
        "http://",
        "scheme must be one of",
    ),
    (
        "bad-url-port",
        GOOD_HEAD + "nats:\n  servers: [nats://a:99999]\n",
        "nats://a:99999",
        "not a valid NATS URL",
    ),
    ("bad-url-host", GOOD_HEAD + "nats:\n  servers: ['nats://:4222']\n", "'nats://", "no valid host name"),
    ("bad-duration-unit", GOOD_HEAD + "shutdown_timeout: 30x\n", "30x", "'30x' is not a valid duration"),
    ("negative-duration", GOOD_HEAD + "shutdown_timeout: -5\n", "-5", "must be at least 0"),
    ("duration-boolean", GOOD_HEAD + "shutdown_timeout: yes\n", "yes", "expected a duration"),
    ("duration-in-section", GOOD_HEAD + "worker:\n  ready_timeout: soon\n", "soon", "worker.ready_timeout"),
    ("level-enum", GOOD_HEAD + "logging:\n  level: verbose\n", "verbose", "'verbose' is not one of"),
    ("format-enum-did-you-mean", GOOD_HEAD + "logging:\n  format: jsn\n", "jsn", "did you mean 'json'"),
    ("processes-zero", GOOD_HEAD + "worker:\n  processes: 0\n", "0", "must be at least 1, got 0"),
    ("steps-not-integer", GOOD_HEAD + "worker:\n  max_concurrent_steps: ten\n", "ten", "expected an integer"),
    (
        "steps-float",
        GOOD_HEAD + "worker:\n  max_concurrent_steps: 2.5\n",
        "2.5",
        "expected an integer, got a number",
    ),
    ("missing-workflows", "nats:\n  name: x\n", "nats", "nothing to run: list workflow modules"),
    ("empty-workflows", "workflows: []\n", "[]", "nothing to run"),
    ("duplicate-workflow-entry", "workflows: [grctl.demo, grctl.demo]\n", "[", "lists the same entry twice"),
    ("bad-module-name", "workflows: ['my-app.flows']\n", "'my-app", "is not a module name"),
    ("empty-file", "# nothing here\n", "#", "the file is empty"),
    ("top-level-list", "- workflows\n", "- workflows", "the top level must be a mapping"),
    ("section-empty", GOOD_HEAD + "nats:\n", "\n", "expected a mapping, got nothing"),
    ("section-list", GOOD_HEAD + "nats: [a]\n", "[a]", "nats: expected a mapping, got a list"),
    (
        "bool-as-string",
        GOOD_HEAD + "reload:\n  watch_config: 'yes please'\n",
        "'yes",
        "expected true or false",
    ),
    ("port-range", GOOD_HEAD + "nats:\n  embedded:\n    port: 70000\n", "70000", "must be at most 65535"),
    ("merge-key", "base: &b {a: 1}\n" + GOOD_HEAD + "nats:\n  <<: *b\n", "<<", "merge keys"),
    ("two-documents", GOOD_HEAD + "---\nworkflows: [x]\n", "---", "more than one document"),
    (
        "missing-creds-file",
        GOOD_HEAD + "nats:\n  credentials_file: nope.creds\n",
        "nope.creds",
        "file not found",
    ),
    ("missing-seed-file", GOOD_HEAD + "nats:\n  nkey_seed_file: nope.nk\n", "nope.nk", "file not found"),
    ("missing-ca-file", GOOD_HEAD + "nats:\n  tls:\n    ca_file: ca.pem\n", "ca.pem", "file not found"),
    ("missing-password-file", GOOD_HEAD + "nats:\n  user: u\n  password_file: pw\n", "pw", "file not found"),
    ("missing-python-path", GOOD_HEAD + "python_path: [nosrc]\n", "nosrc", "directory not found"),
    (
        "missing-log-dir",
        GOOD_HEAD + "logging:\n  destination: logs/grctld.log\n",
        "logs/",
        "directory not found",
    ),
    (
        "creds-not-creds",
        GOOD_HEAD + "nats:\n  credentials_file: notes.txt\n",
        "notes.txt",
        "not a NATS credentials file",
    ),
    ("seed-not-seed", GOOD_HEAD + "nats:\n  nkey_seed_file: notes.txt\n", "notes.txt", "no nkey seed"),
    (
        "cert-without-key",
        GOOD_HEAD + "nats:\n  tls:\n    cert_file: notes.txt\n",
        "cert_file",
        "key_file is missing",
    ),
    (
        "two-auth-methods",
        GOOD_HEAD + "nats:\n  user: u\n  password: p\n  token: t\n",
        "t\n",
        "nats.token: cannot be combined with nats.user",
    ),
    ("password-without-user", GOOD_HEAD + "nats:\n  password: p\n", "p\n", "needs nats.user"),
    (
        "embedded-with-servers",
        GOOD_HEAD + "nats:\n  embedded: true\n  servers: [nats://a:1]\n",
        "[nats",
        "cannot be combined with nats.embedded",
    ),
    (
        "import-missing-module",
        "workflows:\n  - grctl.demo\n  - no_such_pkg.flows\n",
        "no_such_pkg",
        "workflows[1]: cannot import 'no_such_pkg.flows': no module named 'no_such_pkg'",
    ),
    ("import-no-workflow", "workflows: [json]\n", "json", "defines no Workflow"),
    (
        "import-bad-attribute",
        "workflows: ['grctl.demo:nothing']\n",
        "'grctl.demo",
        "has no attribute 'nothing'",
    ),
    (
        "import-raises",
        "workflows: [broken_flows]\npython_path: [src]\n",
        "broken_flows",
        "ZeroDivisionError: division by zero (at ",
    ),
    ("schedule-bad-cron", GOOD_HEAD + "schedules:\n  s:\n    workflow: W\n    cron: '0 25 * * *'\n",
     "'0 25", "schedules.s.cron: cron '0 25 * * *': bad hour"),
    ("schedule-cron-four-fields", GOOD_HEAD + "schedules:\n  s:\n    workflow: W\n    cron: '0 2 * *'\n",
     "'0 2", "must have five fields"),
    ("schedule-unknown-zone", GOOD_HEAD + "schedules:\n  s:\n    workflow: W\n    every: 1h\n"
     "    timezone: Europe/Berlinn\n", "Europe/Berlinn", "unknown time zone 'Europe/Berlinn'"),
    ("schedule-unknown-overlap", GOOD_HEAD + "schedules:\n  s:\n    workflow: W\n    every: 1h\n"
     "    overlap: buffer\n", "buffer", "did you mean 'buffer_one'"),
    ("schedule-cron-and-every", GOOD_HEAD + "schedules:\n  s:\n    workflow: W\n    every: 1h\n"
     "    cron: '* * * * *'\n", "'* *", "give either cron or every"),
    ("schedule-sub-second", GOOD_HEAD + "schedules:\n  s:\n    workflow: W\n    every: 500ms\n",
     "500ms", "at least 1s"),
    ("schedule-bad-id", GOOD_HEAD + "schedules:\n  a.b:\n    workflow: W\n    every: 1h\n",
     "a.b", "schedule id 'a.b' must not contain"),
    ("schedule-no-offset", GOOD_HEAD + "schedules:\n  s:\n    workflow: W\n    every: 1h\n"
     "    start: '2027-01-01T00:00:00'\n", "'2027", "with a UTC offset"),
]

LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def test_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "token", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_config(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    token: str,
    words: str,
) -> None:
    for name in ("GRCTL_NATS_SERVERS", "grctl_NATS_SERVERS", "ENGINE_NATS_SERVERS", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "notes.txt").write_text("just some notes\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken_flows.py").write_text("x = 1\ny = x / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # restores sys.path after the imports of the test
    config = tmp_path / "grctl.yaml"
    config.write_text(text)

    code = main(["-c", str(config), "--check-config"])
    out = capsys.readouterr()
    assert code == 1
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    match = LOCATED.match(lines[0])
    assert match, lines[0]
    assert match["file"] == str(config)
    assert words in match["message"], lines[0]
    line, col = int(match["line"]), int(match["col"])
    source = (text + "\n").splitlines(keepends=True)
    if token:
        assert line <= len(source), lines[0]
        assert source[line - 1][col - 1 :].startswith(token), (lines[0], source[line - 1])
    assert out.out == ""
