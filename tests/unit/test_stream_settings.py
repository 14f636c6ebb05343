"""The operator's settings of the grctl_state stream: validation, how they apply to a stream
configuration, the refusal to shrink a stream below its data, and JetStream refusals in plain words."""

from __future__ import annotations

import pytest
from nats.js.api import StreamConfig

from grctl.daemon.schema import parse_size
from grctl.nats.stream_settings import StreamSettings, StreamSettingsError


def test_defaults_are_one_replica_no_limits_and_the_jetstream_duplicate_window() -> None:
    s = StreamSettings()
    assert (s.replicas, s.max_bytes, s.max_msg_size, s.duplicate_window) == (1, -1, -1, 120.0)
    applied = s.apply(StreamConfig(name="grctl_state", subjects=["a.>"]))
    assert (applied.num_replicas, applied.max_bytes, applied.max_msg_size, applied.duplicate_window) == (
        1, -1, -1, 120.0)
    assert applied.subjects == ["a.>"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"replicas": 0}, "replicas must be between 1 and 5"),
    ({"replicas": 6}, "replicas must be between 1 and 5"),
    ({"max_bytes": 0}, "max_bytes must be a positive number of bytes or -1"),
    ({"max_msg_size": -2}, "max_msg_size must be a positive number of bytes or -1"),
    ({"duplicate_window": 10}, "duplicate_window must be at least 30s"),
])
def test_invalid_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamSettings(**kwargs)  # type: ignore[arg-type]


def test_a_size_limit_below_the_stored_data_is_refused_not_applied() -> None:
    current = StreamConfig(name="grctl_state", max_bytes=-1)
    with pytest.raises(StreamSettingsError, match="holds 5000 bytes, more than the configured max_bytes"):
        StreamSettings(max_bytes=4000).check_update(current, stored_bytes=5000)
    StreamSettings(max_bytes=6000).check_update(current, stored_bytes=5000)  # room to spare: fine
    # an unchanged limit the stream already exceeds is the server's business, not a new deletion
    StreamSettings(max_bytes=4000).check_update(StreamConfig(name="grctl_state", max_bytes=4000), 5000)


def test_jetstream_refusals_are_explained() -> None:
    single = StreamSettings(replicas=3).explain(10074, "replicas > 1 not supported in non-clustered mode",
                                               "create")
    assert "not clustered" in str(single) and "--replicas 1" in str(single) and "10074" in str(single)
    few = StreamSettings(replicas=5).explain(10005, "no suitable peers for placement", "update")
    assert "fewer than 5 JetStream servers" in str(few) and str(few).startswith("cannot update stream")
    other = StreamSettings().explain(10999, "something else", "create")
    assert "something else" in str(other)


@pytest.mark.parametrize(("text", "size"), [
    ("512MiB", 512 * 2**20), ("10GB", 10 * 10**9), ("1.5GiB", int(1.5 * 2**30)), ("100", 100),
    ("64 kib", 64 * 1024), (4096, 4096),
])
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "x", "0", "-1", "5PB", "1.5.2GB", 0, True])
def test_bad_sizes(text: str | int) -> None:
    with pytest.raises(ValueError, match="not a valid size"):
        parse_size(text)
