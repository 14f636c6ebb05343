"""Pydantic models through a real engine and worker: as run input, task argument and result, store value
(typed get), event payload and run result (docs/protocol.md#argument-binding-and-payload-conversion, C33)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel
from support.sdk import StartWorker, wait_history
from ulid import ULID

from grctl.client.client import Client
from grctl.models import Directive
from grctl.nats.connection import Connection
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

pytestmark = pytest.mark.timeout(60)


class Address(BaseModel):
    city: str
    zip: str


class Order(BaseModel):
    order_id: str
    amount: int
    ship_to: Address
    placed_at: datetime


class Receipt(BaseModel):
    order_id: str
    total: int
    city: str


@task
async def price(order: Order, fee: int) -> Receipt:
    return Receipt(order_id=order.order_id, total=order.amount + fee, city=order.ship_to.city)


models_wf = Workflow("PydanticModels")


@models_wf.start()
async def start(ctx: Context, order: Order) -> Directive:
    assert isinstance(order, Order) and isinstance(order.ship_to, Address)
    assert order.placed_at.tzinfo is not None
    receipt = await price(order, 5)
    assert isinstance(receipt, Receipt)
    ctx.store.put("receipt", receipt)
    return ctx.next.wait()


@models_wf.event()
async def confirm(ctx: Context, address: Address) -> Directive:
    receipt = await ctx.store.get("receipt", Receipt)
    assert isinstance(receipt, Receipt) and isinstance(address, Address)
    return ctx.next.complete(Receipt(order_id=receipt.order_id, total=receipt.total, city=address.city))



async def test_pydantic_models_round_trip(start_worker: StartWorker, connection: Connection) -> None:
    await start_worker(models_wf)
    client = Client(connection)
    order = Order(order_id="A-1", amount=40, ship_to=Address(city="Oslo", zip="0150"),
                  placed_at=datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    wf_id = f"pyd-{ULID()}"
    handle = await client.start_workflow("PydanticModels", wf_id, {"order": order})
    await wait_history(client, wf_id, "wait.started")
    await handle.send("confirm", {"address": Address(city="Bergen", zip="5003")})
    result = await handle.result(timeout=20, return_type=Receipt)
    assert result == Receipt(order_id="A-1", total=45, city="Bergen")
    history = await client.get_history(wf_id)
    started = next(e for e in history if str(e.kind) == "task.started")
    assert started.msg.args["order"]["ship_to"] == {"city": "Oslo", "zip": "0150"}
    assert started.msg.args["order"]["placed_at"] == "2026-11-28T12:00:00Z"  # to-builtins: a string
    done = next(e for e in history if str(e.kind) == "task.completed")
    assert done.msg.output == {"result": {"order_id": "A-1", "total": 45, "city": "Oslo"}}
