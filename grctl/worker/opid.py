"""Operation ids: how a re-executed step recognises the operations it already performed
(docs/protocol.md#replay-and-operation-ids).

``{fn_name}:{first 16 hex of sha256(msgpack({"args": args, "seq": seq}))}`` — keys in that order,
shortest msgpack forms, floats as float64 (msgspec's defaults), ``seq`` counting from 1 per step.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from grctl.worker.codec import enc_hook


def operation_id(fn_name: str, args: dict[str, Any], seq: int) -> str:
    data = msgspec.msgpack.encode({"args": args, "seq": seq}, enc_hook=enc_hook)
    return f"{fn_name}:{hashlib.sha256(data).hexdigest()[:16]}"


class OperationCounter:
    """Numbers the replayable operations of one step execution: the first one gets ``seq = 1``."""

    def __init__(self) -> None:
        self.seq = 0

    def next_id(self, fn_name: str, args: dict[str, Any]) -> str:
        self.seq += 1
        return operation_id(fn_name, args, self.seq)
