"""Workflow decorators, handler argument binding and payload conversion
(docs/protocol.md#argument-binding-and-payload-conversion)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from grctl.worker import codec
from grctl.worker.binding import bind_arguments
from grctl.worker.child import ChildOutcome
from grctl.workflow import Workflow, inspect_handler


class Model:
    """Duck-typed pydantic model: model_dump / model_validate."""

    def __init__(self, name: str, count: int) -> None:
        self.name, self.count = name, count

    def model_dump(self) -> dict[str, Any]:
        return {"name": self.name, "count": self.count}

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> Model:
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.model_dump() == self.model_dump()


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Pair:
    a: str
    b: int


def spec_of(fn: Any) -> Any:
    return inspect_handler(fn)


async def no_params(ctx: Any) -> None: ...
async def one(ctx: Any, value: str) -> None: ...
async def one_default(ctx: Any, result: str = "done") -> None: ...
async def one_any(ctx: Any, value: Any = None) -> None: ...
async def many(ctx: Any, a: int, b: str, c: float = 1.5) -> None: ...
async def typed(ctx: Any, p: Point, when: datetime, m: Model) -> None: ...


def test_no_params_or_no_payload_binds_nothing() -> None:
    assert bind_arguments(spec_of(no_params), {"x": 1}) == {}
    assert bind_arguments(spec_of(one), None) == {}
    assert bind_arguments(spec_of(one_default), None) == {}


def test_single_param_by_name_or_whole_payload() -> None:
    assert bind_arguments(spec_of(one), {"value": "ok"}) == {"value": "ok"}
    assert bind_arguments(spec_of(one), "bare") == {"value": "bare"}
    with pytest.raises(msgspec.ValidationError):
        bind_arguments(spec_of(one), {"other": 1})


@pytest.mark.parametrize("value", ["hello", 42, 3.5, True, None,
                                   {"name": "dict-case", "count": 3, "tags": ["a", "b"],
                                    "nested": {"enabled": True}},
                                   ["list-case", 3, {"enabled": True}]])
def test_any_keeps_value_and_type(value: Any) -> None:
    wire = codec.decode(codec.encode({"value": value}))
    bound = bind_arguments(spec_of(one_any), wire)
    assert bound == {"value": value}
    assert type(bound["value"]) is type(value)


def test_several_params_from_a_map() -> None:
    assert bind_arguments(spec_of(many), {"a": 1, "b": "x"}) == {"a": 1, "b": "x"}
    assert bind_arguments(spec_of(many), {"a": 1, "b": "x", "c": 2.0}) == {"a": 1, "b": "x", "c": 2.0}
    with pytest.raises(KeyError):
        bind_arguments(spec_of(many), {"a": 1})
    with pytest.raises(TypeError, match="not a map"):
        bind_arguments(spec_of(many), [1, 2])
    with pytest.raises(msgspec.ValidationError):
        bind_arguments(spec_of(many), {"a": "not-int", "b": "x"})


def test_typed_conversion_of_structs_datetimes_and_models() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    wire = codec.decode(codec.encode({"p": Point(1, 2), "when": when, "m": Model("n", 3)}))
    bound = bind_arguments(spec_of(typed), wire)
    assert bound == {"p": Point(1, 2), "when": when, "m": Model("n", 3)}


def test_two_conversions_differ_on_datetimes_and_bytes() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert codec.normalize({"t": when, "b": b"\x01"}) == {"t": when, "b": b"\x01"}
    assert codec.to_builtins({"t": when, "b": b"\x01"}) == {"t": "2026-01-02T03:04:05Z", "b": "AQ=="}
    assert codec.to_builtins(Model("a", 1)) == {"name": "a", "count": 1}
    assert codec.normalize((1, 2)) == [1, 2]
    assert codec.convert({"a": "x", "b": 2}, Pair) == Pair("x", 2)
    assert codec.convert("2026-01-02T03:04:05Z", datetime) == when


def test_child_outcome_conversion() -> None:
    payload = {"status": "completed", "result": {"name": "n", "count": 1}, "error": None}
    outcome = codec.convert(payload, ChildOutcome[Model])
    assert outcome.ok and outcome.result == Model("n", 1)
    failed = codec.convert({"status": "terminated", "result": None,
                            "error": {"type": "Terminated", "message": "bye", "stack_trace": ""}},
                           ChildOutcome)
    assert not failed.ok
    with pytest.raises(Exception, match="Terminated: bye"):
        failed.unwrap()


def test_handler_signature_rules() -> None:
    async def unannotated(ctx, value):  # type: ignore[no-untyped-def]
        ...

    async def star(ctx: Any, *args: int) -> None: ...
    async def kw(ctx: Any, **kwargs: int) -> None: ...

    with pytest.raises(TypeError, match="annotation"):
        inspect_handler(unannotated)
    with pytest.raises(TypeError, match=r"\*args"):
        inspect_handler(star)
    with pytest.raises(TypeError, match=r"\*args"):
        inspect_handler(kw)
    spec = inspect_handler(many)
    assert list(spec.params) == ["a", "b", "c"] and spec.defaults == {"c": 1.5}


def test_workflow_registration_and_catalog() -> None:
    wf = Workflow(workflow_type="order_wf")

    @wf.start(timeout=timedelta(seconds=2))
    async def begin(ctx: Any, order_id: str) -> None: ...

    @wf.step()
    async def reserve(ctx: Any) -> None: ...

    @wf.step(timeout=0.5)
    async def charge(ctx: Any) -> None: ...

    @wf.event(name="approve", timeout=timedelta(seconds=5))
    async def on_approve(ctx: Any) -> None: ...

    @wf.event()
    async def cancel(ctx: Any) -> None: ...

    @wf.query()
    async def status(ctx: Any) -> str:
        return "x"

    td = wf.type_def()
    assert td.type == "order_wf" and td.start_step == "begin" and td.start_step_timeout_ms == 2000
    assert td.steps == ["reserve", "charge"]
    assert [(e.name, e.timeout_ms) for e in td.events] == [("approve", 5000), ("cancel", 0)]
    assert td.queries == ["status"]
    assert wf.step_timeout_ms("reserve") == 10_000  # default step timeout
    assert wf.step_timeout_ms("charge") == 500
    assert wf.step_timeout_ms("nope") is None
    with pytest.raises(ValueError, match="already has a start handler"):
        wf.start()(begin)
    with pytest.raises(ValueError, match="already registered"):
        wf.step()(reserve)
    with pytest.raises(ValueError, match="already registered"):
        wf.event(name="approve")(cancel)


@pytest.mark.parametrize("bad", ["a.b", "a*", "a>", "a b", ""])
def test_workflow_type_must_be_a_subject_token(bad: str) -> None:
    with pytest.raises(ValueError):
        Workflow(workflow_type=bad)
