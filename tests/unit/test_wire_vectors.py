"""Byte-level encodings of the envelopes (docs/protocol.md#envelopes): decode every field, re-encode,
decode again."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from grctl.models import (
    APIError,
    APIResponse,
    Command,
    CommandKind,
    DescribeCmd,
    Directive,
    DirectiveKind,
    ErrorDetails,
    HistoryEvent,
    HistoryKind,
    RunInfo,
    RunStatus,
    Start,
    StepResult,
    Wait,
    decode_command,
    decode_directive,
    decode_history,
    decode_response,
    encode_command,
    encode_directive,
    encode_history,
    encode_response,
)
from grctl.models.records import RunState, RunStateKind, Timer

TS = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TS_EXT = "d6ff695735a5"


def s(text: str) -> str:
    """msgpack fixstr of ``text``, as hex."""
    raw = text.encode()
    assert len(raw) < 32
    return f"{0xA0 | len(raw):02x}" + raw.hex()


def h(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


START_TASK = h(
    "86", s("id"), s("D1"), s("k"), s("start"), s("t"), TS_EXT,
    s("r"), "87", s("id"), s("R1"), s("wf_id"), s("W1"), s("wf_type"), s("t"), s("status"), s("running"),
    s("created_at"), TS_EXT, s("started_at"), TS_EXT, s("history_seq_id"), "00",
    s("a"), "00",
    s("m"), "c421", "82", s("input"), "81", s("value"), s("ok"), s("timeout_ms"), "ce000493e0",
)

STEP_STARTED = h(
    "86", s("w"), s("W1"), s("r"), s("R1"), s("wo"), s("w_ab12c.9f@h"), s("ts"), TS_EXT,
    s("k"), s("step.started"),
    s("m"), "c428", "82", s("step_name"), s("start"), s("worker_id"), s("w_ab12c.9f@h"),
)

DESCRIBE_CMD = h(
    "85", s("id"), s("C1"), s("k"), s("run.describe"), s("m"), "c40a", "81", s("wf_id"), s("W1"),
    s("t"), TS_EXT, s("s"), s("c_0123abcd@h"),
)

STEP_RESULT_INNER = (
    "87" + s("processed_msg_kind") + s("step")
    + s("processed_msg") + "82" + s("step_name") + s("charge") + s("timeout_ms") + "cd2710"
    + s("worker_id") + s("w_e1ca5.7f@h")
    + s("kv_updates") + "81" + s("order_id") + s("A-1")
    + s("next_msg_kind") + s("wait")
    + s("next_msg") + "82" + s("timeout_ms") + "00" + s("timeout_step_name") + "a0"
    + s("duration_ms") + "0c"
)

STEP_RESULT = h(
    "85", s("id"), s("S1"), s("k"), s("step_result"),
    s("m"), "c4", f"{len(bytes.fromhex(STEP_RESULT_INNER)):02x}", STEP_RESULT_INNER,
    s("r"), "de0007", s("id"), s("R1"), s("wf_id"), s("W1"), s("wf_type"), s("T"), s("status"), s("running"),
    s("created_at"), TS_EXT, s("started_at"), TS_EXT, s("history_seq_id"), "05",
    s("t"), TS_EXT,
)


def test_vector_lengths_match_the_protocol() -> None:
    assert len(DESCRIBE_CMD) == 59
    assert len(STEP_RESULT) == 320
    assert START_TASK[START_TASK.index(b"\xc4") + 1] == 0x21


def test_start_worker_task() -> None:
    d = decode_directive(START_TASK)
    assert d.id == "D1" and d.kind is DirectiveKind.start and d.timestamp == TS and d.attempt == 0
    ri = d.run_info
    assert (ri.id, ri.wf_id, ri.wf_type, ri.status) == ("R1", "W1", "t", RunStatus.running)
    assert ri.created_at == TS and ri.started_at == TS and ri.history_seq_id == 0
    assert ri.parent_wf_id is None and ri.timeout is None
    assert d.msg == Start(input={"value": "ok"}, timeout_ms=300000)
    again = decode_directive(encode_directive(d))
    assert again == d


def test_step_started_history_event() -> None:
    e = decode_history(STEP_STARTED)
    assert (e.wf_id, e.run_id, e.worker_id, e.timestamp) == ("W1", "R1", "w_ab12c.9f@h", TS)
    assert e.kind is HistoryKind.step_started and e.operation_id == ""
    assert e.msg.step_name == "start" and e.msg.worker_id == "w_ab12c.9f@h"
    encoded = encode_history(e)
    assert b"\xa1o" not in encoded  # server events carry no operation id
    assert decode_history(encoded) == e


def test_describe_command() -> None:
    c = decode_command(DESCRIBE_CMD)
    assert (c.id, c.kind, c.timestamp, c.sender_id) == ("C1", CommandKind.run_describe, TS, "c_0123abcd@h")
    assert c.msg == DescribeCmd(wf_id="W1")
    assert decode_command(encode_command(c)) == c


def test_step_result_with_next_wait() -> None:
    d = decode_directive(STEP_RESULT)
    assert d.id == "S1" and d.kind is DirectiveKind.step_result and d.timestamp == TS
    assert d.run_info.wf_type == "T" and d.run_info.history_seq_id == 5
    res = d.msg
    assert isinstance(res, StepResult)
    assert res.processed_msg_kind == "step" and res.processed_step_name == "charge"
    assert res.processed().timeout_ms == 10000
    assert res.worker_id == "w_e1ca5.7f@h" and res.kv_updates == {"order_id": "A-1"}
    assert res.next_msg_kind == "wait" and res.next() == Wait(timeout_ms=0, timeout_step_name="")
    assert res.duration_ms == 12
    assert decode_directive(encode_directive(d)) == d


def test_unknown_keys_are_ignored_and_wider_headers_accepted() -> None:
    wire = msgspec.msgpack.decode(START_TASK)
    wire["future_key"] = [1, 2]
    wire["a"] = 0
    raw = bytearray(msgspec.msgpack.encode(wire))
    d = decode_directive(bytes(raw))
    assert d.id == "D1"
    # Go writes fixed-width integers and map16 headers.
    go_style = h("de0001", s("step_name"), s("x"))
    assert msgspec.msgpack.decode(go_style, type=dict) == {"step_name": "x"}


def test_unknown_directive_kind_is_an_error() -> None:
    wire = msgspec.msgpack.decode(START_TASK)
    wire["k"] = "bogus"
    with pytest.raises(ValueError):
        decode_directive(msgspec.msgpack.encode(wire))
    with pytest.raises(msgspec.DecodeError):
        decode_directive(b"\xc1garbage")


def test_nil_step_timeout_means_default() -> None:
    from grctl.models import Step

    raw = msgspec.msgpack.encode({"step_name": "s", "timeout_ms": None})
    assert msgspec.msgpack.decode(raw, type=Step).timeout_ms is None


def test_api_response_omits_absent_keys() -> None:
    ok = encode_response(APIResponse(success=True))
    assert msgspec.msgpack.decode(ok) == {"success": True}
    err = encode_response(APIResponse(success=False, error=APIError(4002, "Workflow run not found")))
    assert msgspec.msgpack.decode(err) == {
        "success": False, "error": {"code": 4002, "message": "Workflow run not found"}
    }
    ri = RunInfo(id="R", wf_id="W", wf_type="T", status=RunStatus.terminated, created_at=TS)
    described = decode_response(encode_response(APIResponse(success=True, payload=ri)))
    assert described.run_info() == ri


def test_timestamps_are_the_msgpack_extension() -> None:
    ri = RunInfo(id="R", wf_id="W", wf_type="T", created_at=TS)
    assert bytes.fromhex(TS_EXT) in msgspec.msgpack.encode(ri)


def test_go_zero_time_decodes() -> None:
    # 12-byte timestamp: 0 ns, seconds = -62135596800 (0001-01-01T00:00:00Z)
    zero = "c70cff" + "00000000" + (-62135596800).to_bytes(8, "big", signed=True).hex()
    raw = h("83", s("id"), s("X"), s("k"), s("wake_from_inbox"), s("t"), zero)
    wire = msgspec.msgpack.decode(raw)
    wire["r"] = {"id": "R", "wf_id": "W", "wf_type": "T"}
    wire["m"] = b"\x80"
    d = decode_directive(msgspec.msgpack.encode(wire))
    assert d.timestamp.year == 1


def test_records_roundtrip() -> None:
    cancel = Directive(
        id="C", timestamp=TS, kind=DirectiveKind.cancel,
        run_info=RunInfo(id="R", wf_id="W", wf_type="T", created_at=TS), msg=__import__(
            "grctl.models", fromlist=["Cancel"]).Cancel(reason="why"),
    )
    state = RunState(wf_id="W", run_id="R", kind=RunStateKind.step, entered_at=TS, last_event_seq_id=0,
                     pending_cancel=cancel.to_wire())
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=RunState)
    assert back == state
    assert Directive.from_wire(back.pending_cancel) == cancel
    timer = Timer(id="step_timeout.D", k="step_timeout", wfid="W", created=TS, expires=TS,
                  d=cancel.to_wire(), step="start")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(timer), type=Timer) == timer


def test_error_details_always_carry_every_key() -> None:
    raw = msgspec.msgpack.encode(ErrorDetails(type="ValueError", message="m"))
    assert set(msgspec.msgpack.decode(raw)) == {"type", "message", "stack_trace", "qualified_type"}


def test_command_needs_a_sender() -> None:
    with pytest.raises(ValueError):
        encode_command(Command(id="C", kind=CommandKind.run_describe, timestamp=TS, msg=DescribeCmd("W")))


def test_history_event_with_operation_id_roundtrips() -> None:
    from grctl.models.history import TaskCompleted

    e = HistoryEvent(wf_id="W", run_id="R", worker_id="w", timestamp=TS, kind=HistoryKind.task_completed,
                     msg=TaskCompleted("t:1", "t", {"result": 1}, "start", 3), operation_id="t:1")
    assert decode_history(encode_history(e)) == e
