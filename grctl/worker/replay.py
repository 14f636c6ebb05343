"""The replay cursor: matches a re-executed step's operations against its recorded history
(docs/protocol.md#replay-and-operation-ids).

The history holds the worker-written events of the step (those with an operation id), in stream order.
Each operation asks ``match(op_id, kinds)``: the recorded event if the history has it, None when the
step has moved past its history (execute live), ``NonDeterminismError`` when the history disagrees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from grctl.models.errors import NonDeterminismError
from grctl.models.history import REPLAY_KINDS, HistoryEvent, HistoryKind


class ReplayCursor:
    def __init__(self, history: Iterable[HistoryEvent] = ()) -> None:
        self._history = [e for e in history if e.operation_id]
        self._cursor = 0
        self._pending: dict[str, tuple[asyncio.Future[HistoryEvent], frozenset[HistoryKind]]] = {}

    @property
    def history(self) -> list[HistoryEvent]:
        return self._history

    @property
    def position(self) -> int:
        return self._cursor

    @property
    def replaying(self) -> bool:
        """True while recorded operations remain to be matched."""
        return self._cursor < len(self._history)

    def extend(self, history: Iterable[HistoryEvent]) -> None:
        """The step's history read again: what was read before is its beginning, so the position holds."""
        self._history = [e for e in history if e.operation_id]

    def count(self, kind: HistoryKind, op_id: str) -> int:
        """How many events of ``kind`` the history holds for ``op_id`` (e.g. failed task attempts)."""
        return sum(1 for e in self._history if e.kind == kind and e.operation_id == op_id)

    async def match(self, op_id: str, kinds: frozenset[HistoryKind]) -> HistoryEvent | None:
        if not self.replaying:
            return None
        future: asyncio.Future[HistoryEvent] = asyncio.get_running_loop().create_future()
        self._pending[op_id] = (future, kinds)
        self._resolve()
        if not future.done():
            await asyncio.sleep(0)  # let operations started concurrently register too
            self._resolve()
        if future.done():
            return future.result()
        self._pending.pop(op_id, None)
        if not self.replaying:
            return None
        raise NonDeterminismError(
            f"Unresolved operation {op_id} (expected {sorted(kinds)}): the history has "
            f"{self._history[self._cursor].operation_id} ({self._history[self._cursor].kind}) "
            f"at cursor {self._cursor}"
        )

    def _resolve(self) -> None:
        while self._cursor < len(self._history):
            entry = self._history[self._cursor]
            if entry.kind not in REPLAY_KINDS:
                self._cursor += 1
                continue
            waiting = self._pending.pop(entry.operation_id, None)
            if waiting is None:
                return
            future, kinds = waiting
            if entry.kind in kinds:
                future.set_result(entry)
            else:
                future.set_exception(NonDeterminismError(
                    f"operation {entry.operation_id} expected one of {sorted(kinds)} but the history "
                    f"has {entry.kind} at cursor {self._cursor}"
                ))
            self._cursor += 1
