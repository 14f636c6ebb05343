"""The pipes between grctld and its children: the spec line down, typed status lines up."""

from __future__ import annotations

import os

import msgspec

from grctl.daemon.channel import (
    ErrorReport,
    ReadyInfo,
    Spec,
    StatusKind,
    StatusPipe,
    parse_error,
    parse_ready,
    parse_status,
    read_spec,
)


def test_the_spec_line_carries_the_config_unchanged() -> None:
    config = b'{"path":"/etc/grctl/grctl.yaml","workflows":["a.b"]}'
    read_fd, write_fd = os.pipe()
    spec_line = msgspec.json.encode(Spec(config=msgspec.Raw(config), generation=3, index=1))
    os.write(write_fd, spec_line + b"\nrest")
    spec = read_spec(read_fd)
    assert (bytes(spec.config), spec.generation, spec.index) == (config, 3, 1)
    assert os.read(read_fd, 10) == b"rest"  # nothing after the line was consumed
    os.close(read_fd)
    os.close(write_fd)


def lines_of(send: list[tuple[str, tuple[object, ...]]]) -> list[str]:
    read_fd, write_fd = os.pipe()
    pipe = StatusPipe(write_fd)
    for method, args in send:
        getattr(pipe, method)(*args)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        return f.read().decode().splitlines()


def test_status_lines_round_trip() -> None:
    info = ReadyInfo(pid=42, workflows=["Orders"], files={"/src/orders.py": "ab12"})
    lines = lines_of([("ready", (info,)), ("error", ("no\nmodule  x", True, 2)), ("nats", (False,))])
    kinds = [parse_status(line) for line in lines]
    assert [k for k, _ in kinds] == [StatusKind.READY, StatusKind.FATAL, StatusKind.NATS]
    assert parse_ready(kinds[0][1]) == info
    assert parse_error(kinds[1][1]) == ErrorReport(message="no module x", entry=2)
    assert kinds[2][1] == "down"


def test_unreadable_status_lines_are_kept_as_text() -> None:
    assert parse_status("hello world") == (None, "hello world")
    old = "plain text from an older child"
    assert parse_error(old) == ErrorReport(message=old)
    assert parse_ready("not json") == ReadyInfo()
