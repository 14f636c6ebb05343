"""Workflows over custom types, served with a ``CodecRegistry`` (``CODEC``) by a worker process.

``Money`` is a plain class that only the registry knows how to carry; ``Order`` is a dataclass holding
``Decimal`` prices and a ``Money``. They cross every boundary: run input and result, task arguments
and result, store values, a child run's input and result (through ``ChildOutcome[Money]``), and an
event payload. Every handler checks that it received the real types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from grctl.codec import CodecRegistry
from grctl.models import Directive
from grctl.worker import ChildOutcome
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow


class Money:
    def __init__(self, amount: Decimal, currency: str) -> None:
        self.amount = amount
        self.currency = currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and (self.amount, self.currency) == (other.amount, other.currency)

    def __repr__(self) -> str:
        return f"Money({self.amount!r}, {self.currency!r})"


@dataclass
class LineItem:
    sku: str
    price: Decimal
    qty: int


@dataclass
class Order:
    order_id: str
    items: list[LineItem]
    deposit: Money


@dataclass
class Receipt:
    order_id: str
    total: Money
    paid: Money
    deposit_held: Money


def _encode_money(money: Money) -> dict[str, Any]:
    return {"amount": str(money.amount), "currency": money.currency}


def _decode_money(tp: type[Money], data: dict[str, Any]) -> Money:
    return tp(Decimal(data["amount"]), data["currency"])


CODEC = CodecRegistry()
CODEC.register(check=lambda tp: issubclass(tp, Money), encode=_encode_money, decode=_decode_money)


@task
async def price(items: list[LineItem], fee: Money) -> Money:
    assert all(isinstance(i.price, Decimal) for i in items) and isinstance(fee, Money)
    return Money(sum((i.price * i.qty for i in items), fee.amount), fee.currency)


order_wf = Workflow("CodecOrder")
deposit_wf = Workflow("CodecDeposit")


@order_wf.start(timeout=timedelta(seconds=30))
async def start(ctx: Context, order: Order, fee: Money) -> Directive:
    assert isinstance(order.deposit, Money) and isinstance(order.items[0], LineItem)
    total = await price(order.items, fee)
    assert isinstance(total, Money)
    ctx.store.put("order", order)
    ctx.store.put("total", total)
    await ctx.start_child("CodecDeposit", f"{ctx.run.wf_id}-deposit", {"deposit": order.deposit},
                          on_completed_step=deposit_held)
    return ctx.next.wait()


@order_wf.step()
async def deposit_held(ctx: Context, outcome: ChildOutcome[Money]) -> Directive:
    held = outcome.unwrap()
    assert isinstance(held, Money)
    ctx.store.put("held", held)
    return ctx.next.wait()


@order_wf.event()
async def pay(ctx: Context, payment: Money) -> Directive:
    assert isinstance(payment, Money)
    order = await ctx.store.get("order", Order)
    assert order.items[0].price == Decimal("19.99")
    return ctx.next.complete(Receipt(order_id=order.order_id, total=await ctx.store.get("total", Money),
                                     paid=payment, deposit_held=await ctx.store.get("held", Money)))


@deposit_wf.start()
async def hold(ctx: Context, deposit: Money) -> Directive:
    assert isinstance(deposit, Money)
    return ctx.next.complete(Money(deposit.amount, deposit.currency))


WORKFLOWS = [order_wf, deposit_wf]
