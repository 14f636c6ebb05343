"""CodecRegistry: custom type handlers (check, encode, decode), newest first, over msgspec's own types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from support.wf_codec import LineItem, Money

from grctl import codec as shared
from grctl.codec import CodecRegistry, default_codec
from grctl.worker import codec as worker_codec
from grctl.worker.child import ChildOutcome


@dataclass
class Invoice:
    items: list[LineItem]
    total: Money
    issued_at: datetime


class Model:
    """Pydantic's shape without pydantic: ``model_dump`` / ``model_validate``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def model_dump(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def model_validate(cls, data: Any) -> Model:
        return cls(data["name"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.name == self.name


def money_codec() -> CodecRegistry:
    registry = CodecRegistry()
    registry.register(check=lambda tp: issubclass(tp, Money),
                      encode=lambda m: {"amount": str(m.amount), "currency": m.currency},
                      decode=lambda tp, data: tp(Decimal(data["amount"]), data["currency"]))
    return registry


WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
INVOICE = Invoice(items=[LineItem("A-1", Decimal("19.99"), 2)], total=Money(Decimal("39.98"), "EUR"),
                  issued_at=WHEN)


def test_public_import_path_is_the_shared_registry() -> None:
    assert worker_codec.CodecRegistry is CodecRegistry
    assert worker_codec.default_codec is default_codec


def test_custom_class_inside_a_dataclass_round_trips_exactly() -> None:
    codec = money_codec()
    wire = codec.normalize(INVOICE)
    assert wire == {"items": [{"sku": "A-1", "price": "19.99", "qty": 2}],
                    "total": {"amount": "39.98", "currency": "EUR"}, "issued_at": WHEN}
    assert codec.convert(wire, Invoice) == INVOICE
    assert codec.convert(codec.decode(codec.encode(INVOICE)), Invoice) == INVOICE


def test_to_builtins_is_what_task_arguments_and_results_become() -> None:
    codec = money_codec()
    assert codec.to_builtins(INVOICE)["issued_at"] == "2026-03-04T05:06:07Z"  # a string, unlike normalize
    assert codec.to_primitive(Money(Decimal("1.5"), "USD")) == {"amount": "1.5", "currency": "USD"}
    assert codec.from_primitive({"amount": "1.5", "currency": "USD"}, Money) == Money(Decimal("1.5"), "USD")


def test_custom_class_at_the_top_level_and_in_containers() -> None:
    codec = money_codec()
    five = Money(Decimal("5"), "USD")
    assert codec.convert({"amount": "5", "currency": "USD"}, Money) == five
    assert codec.convert(five, Money) is five  # already converted
    assert codec.convert(codec.normalize([five, five]), list[Money]) == [five, five]
    assert codec.convert(codec.normalize({"a": five}), dict[str, Money]) == {"a": five}
    outcome = codec.convert({"status": "completed", "result": codec.normalize(five)}, ChildOutcome[Money])
    assert outcome.unwrap() == five


def test_an_unregistered_class_is_refused_on_both_sides() -> None:
    with pytest.raises(TypeError, match="Money"):
        default_codec.normalize(Money(Decimal("1"), "EUR"))
    with pytest.raises(msgspec.ValidationError):
        default_codec.convert({"amount": "1", "currency": "EUR"}, Invoice)


def test_registering_on_one_registry_leaves_the_default_alone() -> None:
    money_codec()
    with pytest.raises(TypeError):
        shared.normalize(Money(Decimal("1"), "EUR"))
    assert shared.normalize(Money(Decimal("1"), "EUR"), money_codec()) == {"amount": "1", "currency": "EUR"}


def test_the_newest_matching_handler_wins() -> None:
    codec = money_codec()
    codec.register(check=lambda tp: tp is Money, encode=lambda m: f"{m.amount} {m.currency}",
                   decode=lambda tp, data: tp(Decimal(data.split()[0]), data.split()[1]))
    assert codec.normalize(Money(Decimal("2.50"), "GBP")) == "2.50 GBP"
    assert codec.convert("2.50 GBP", Money) == Money(Decimal("2.50"), "GBP")


def test_every_registry_starts_with_the_model_handler_and_it_can_be_overridden() -> None:
    codec = CodecRegistry()
    assert codec.normalize({"m": Model("n")}) == {"m": {"name": "n"}}
    assert codec.convert({"name": "n"}, Model) == Model("n")
    codec.register(check=lambda tp: issubclass(tp, Model), encode=lambda m: m.name.upper(),
                   decode=lambda tp, data: tp(data.lower()))
    assert codec.normalize(Model("n")) == "N"
    assert codec.convert("N", Model) == Model("n")


def test_a_check_that_cannot_judge_a_type_does_not_apply() -> None:
    def check(tp: type) -> bool:
        if tp is not Money:
            raise TypeError("only money")
        return True

    codec = CodecRegistry()
    codec.register(check, lambda m: str(m.amount), lambda tp, data: tp(Decimal(data), "EUR"))
    assert codec.convert({"name": "n"}, Model) == Model("n")
    assert codec.convert("3", Money) == Money(Decimal("3"), "EUR")
    assert codec.convert([1, 2], list[int]) == [1, 2]


async def test_the_store_encodes_and_converts_with_its_registry() -> None:
    from grctl.worker.store import Store

    async def stored(key: str) -> bytes | None:
        return money_codec().encode(INVOICE) if key == "invoice" else None

    store = Store(stored, money_codec())
    assert await store.get("invoice", Invoice) == INVOICE
    assert await store.get("invoice", ty=Invoice) == INVOICE  # the public SDK's keyword
    store.put("fee", Money(Decimal("0.30"), "EUR"))
    assert await store.get("fee", Money) == Money(Decimal("0.30"), "EUR")
    assert store.take_pending() == {"fee": {"amount": "0.30", "currency": "EUR"}}
    with pytest.raises(TypeError, match="Money"):
        Store(stored).put("fee", Money(Decimal("0.30"), "EUR"))
