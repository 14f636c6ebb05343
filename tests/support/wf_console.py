"""The workflow the console's browser tests (and its screenshots) run: an order that is checked,
charged through a task that is retried, and shipped.

Input ``mode``: ``ok`` completes; ``decline`` makes every charge attempt fail, so the task is retried
and the run fails with a traceback; ``hold`` parks the run until the event ``approve`` arrives (a run
to cancel, or to send an event to).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from grctl.models import Directive
from grctl.models.directive import RetryPolicy
from grctl.worker.context import Context
from grctl.worker.task import task
from grctl.workflow import Workflow

orders = Workflow("ProcessOrder")
WORKFLOWS = [orders]


class CardDeclinedError(Exception):
    pass


@task(retry_policy=RetryPolicy(max_attempts=3, initial_delay_ms=200, backoff_multiplier=2.0))
async def charge_card(order_id: str, amount: int, decline: bool) -> str:
    await asyncio.sleep(0.05)
    if decline:
        raise CardDeclinedError(f"card declined for order {order_id} (amount {amount})")
    return f"receipt-{order_id}"


@orders.start(timeout=timedelta(seconds=30))
async def check(ctx: Context, order_id: str, amount: int, mode: str = "ok", note: Any = None) -> Directive:
    ctx.store.put("order", {"order_id": order_id, "amount": amount, "mode": mode, "note": note})
    await ctx.sleep(0.2)
    if mode == "hold":
        return ctx.next.wait()
    return ctx.next.step(charge)


@orders.step(timeout=timedelta(seconds=30))
async def charge(ctx: Context) -> Directive:
    order = await ctx.store.get("order")
    receipt = await charge_card(order["order_id"], order["amount"], order["mode"] == "decline")
    ctx.store.put("receipt", receipt)
    return ctx.next.step(ship)


@orders.step(timeout=timedelta(seconds=30))
async def ship(ctx: Context) -> Directive:
    await asyncio.sleep(0.1)
    return ctx.next.complete({"receipt": await ctx.store.get("receipt"), "carrier": "DHL"})


@orders.event()
async def approve(ctx: Context, by: str = "") -> Directive:
    return ctx.next.step(charge)
