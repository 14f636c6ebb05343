"""Reads that must see the stream at least as far as a known sequence (a worker's store read: the value
its step was dispatched with), on a replicated stream whose leader was elected a moment ago and has
not applied all that its predecessor committed. The transport is a stand-in that answers as such a
leader does; the rule under test is direct.get_last's."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest

from grctl.nats import direct


@dataclass
class Reply:
    data: bytes


class LaggingLeader:
    """A stream leader that has applied up to ``applied``; it catches up by ``step`` at each request."""

    def __init__(self, applied: int, step: int, values: dict[int, int]) -> None:
        self.applied = applied
        self.step = step
        self.values = values  # stream sequence -> the value of the key stored there
        self.asked: list[str] = []

    async def request(self, nc: Any, subject: str, data: bytes = b"", **_: Any) -> Reply:
        self.asked.append(subject.split(".")[3])
        held = [seq for seq in self.values if seq <= self.applied]
        self.applied += self.step
        if subject.startswith("$JS.API.STREAM.INFO."):
            return Reply(json.dumps({"state": {"last_seq": self.applied - self.step}}).encode())
        assert subject.startswith("$JS.API.STREAM.MSG.GET."), subject
        if not held:
            return Reply(json.dumps({"error": {"code": 404, "err_code": direct.ERR_NO_MESSAGE}}).encode())
        seq = max(held)
        message = {"subject": "grctl_wf_kv.w.r.value", "seq": seq, "time": "",
                   "data": base64.b64encode(str(self.values[seq]).encode()).decode()}
        return Reply(json.dumps({"message": message}).encode())


@pytest.fixture
def leader(monkeypatch: pytest.MonkeyPatch) -> LaggingLeader:
    # The key was written at 95 (value 11) over an older value at 50 (value 1); the step's task is at 100.
    lagging = LaggingLeader(applied=60, step=20, values={50: 1, 95: 11})

    async def replicated(nc: Any) -> bool:
        return True

    monkeypatch.setattr(direct, "request", lagging.request)
    monkeypatch.setattr(direct, "replicated", replicated)
    return lagging


async def test_a_leader_behind_never_answers_with_an_older_value(leader: LaggingLeader) -> None:
    found = await direct.get_last(object(), "grctl_wf_kv.w.r.value", known_seq=100)  # type: ignore[arg-type]
    assert found is not None and found.data == b"11" and found.seq == 95
    assert leader.asked[0] == "INFO"  # asked how far it is before reading, not after
    assert leader.asked.count("INFO") >= 2  # it was behind at first: the read waited


async def test_without_a_known_sequence_the_leader_is_read_at_once(leader: LaggingLeader) -> None:
    found = await direct.get_last(object(), "grctl_wf_kv.w.r.value")  # type: ignore[arg-type]
    assert found is not None and found.seq == 50  # nothing says it must be newer
    assert leader.asked == ["MSG"]
