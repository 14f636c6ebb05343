"""Operation ids (docs/protocol.md#replay-and-operation-ids) against known vectors: the msgpack bytes that
are hashed and the ids that come out."""

from __future__ import annotations

import inspect

import msgspec
import pytest

from grctl.worker import codec
from grctl.worker.opid import OperationCounter, operation_id


@pytest.mark.parametrize(
    ("fn_name", "args", "seq", "packed", "expected"),
    [
        ("now", {}, 1, "82a46172677380a373657101", "now:a19d3ea37811583f"),
        ("random", {}, 2, "82a46172677380a373657102", "random:ec2d5c3b183d53f6"),
        ("echo_task", {"value": "ok"}, 1, "82a46172677381a576616c7565a26f6ba373657101",
         "echo_task:70ba613566b271dc"),
        ("sleep", {"duration_ms": 100}, 1, "82a46172677381ab6475726174696f6e5f6d7364a373657101",
         "sleep:0220c6c2f7677a32"),
    ],
)
def test_vectors(fn_name: str, args: dict, seq: int, packed: str, expected: str) -> None:
    assert msgspec.msgpack.encode({"args": args, "seq": seq}).hex() == packed
    assert operation_id(fn_name, args, seq) == expected


def test_child_start_vector() -> None:
    args = {"wf_type": "child", "wf_id": "W1-child", "workflow_input": None, "workflow_timeout": None}
    assert operation_id("start", args, 1) == "start:6a63d1e415ea4e8c"


def test_task_arguments_include_defaults_in_signature_order() -> None:
    async def echo_task(value: str, suffix: str = "!") -> str:
        return value + suffix

    bound = inspect.signature(echo_task).bind("ok")
    bound.apply_defaults()
    args = {k: codec.to_builtins(v) for k, v in bound.arguments.items()}
    assert list(args) == ["value", "suffix"]
    assert operation_id("echo_task", args, 1) == "echo_task:d34e7f14dcbd3c7c"


def test_counter_starts_at_one_and_increments() -> None:
    counter = OperationCounter()
    assert counter.next_id("now", {}) == "now:a19d3ea37811583f"
    assert counter.next_id("random", {}) == "random:ec2d5c3b183d53f6"
    assert counter.seq == 2
