"""Custom types through a ``CodecRegistry`` on both sides: a client in this process and a worker process
(``tests/support/wf_codec.py``), with a real engine and nats-server in between."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from support.processes import WorkerProcess
from support.sdk import wait_history
from support.wf_codec import CODEC, LineItem, Money, Order, Receipt
from ulid import ULID

from grctl.client.client import Client
from grctl.models import RunStatus
from grctl.models.errors import WorkflowNotFoundError
from grctl.nats.connection import Connection

pytestmark = pytest.mark.timeout(60)

ORDER = Order(order_id="O-7", deposit=Money(Decimal("5.00"), "EUR"),
              items=[LineItem("A-1", Decimal("19.99"), 2), LineItem("B-2", Decimal("0.10"), 3)])
FEE = Money(Decimal("1.50"), "EUR")


@pytest.fixture
async def worker(engine_process: subprocess.Popen[bytes],
                 subprocess_env: dict[str, str]) -> AsyncIterator[WorkerProcess]:
    proc = WorkerProcess("support.wf_codec", subprocess_env).start()
    try:
        yield await proc.ready()
    finally:
        proc.stop()


async def test_custom_types_cross_every_boundary(worker: WorkerProcess, connection: Connection) -> None:
    client = Client(connection, codec=CODEC)
    wf_id = f"codec-{ULID()}"
    handle = await client.start_workflow(type="CodecOrder", id=wf_id, input={"order": ORDER, "fee": FEE},
                                         return_type=Receipt)
    await wait_history(client, wf_id, "step.completed", step="deposit_held")
    await handle.send("pay", Money(Decimal("41.78"), "EUR"))
    receipt = await handle.result(timeout=20)
    assert receipt == Receipt(order_id="O-7", total=Money(Decimal("41.78"), "EUR"),
                              paid=Money(Decimal("41.78"), "EUR"), deposit_held=Money(Decimal("5.00"), "EUR"))
    assert isinstance(receipt.total.amount, Decimal)

    history = await client.get_history(wf_id)
    started = next(e.msg for e in history if str(e.kind) == "task.started")
    assert started.args == {"items": [{"sku": "A-1", "price": "19.99", "qty": 2},
                                      {"sku": "B-2", "price": "0.10", "qty": 3}],
                            "fee": {"amount": "1.50", "currency": "EUR"}}
    done = next(e.msg for e in history if str(e.kind) == "task.completed")
    assert done.output == {"result": {"amount": "41.78", "currency": "EUR"}}
    child = next(e.msg for e in history if str(e.kind) == "child.started")
    assert child.input == {"deposit": {"amount": "5.00", "currency": "EUR"}}
    assert (await client.describe(f"{wf_id}-deposit")).status == RunStatus.completed


async def test_future_and_run_workflow_give_the_wire_value_or_the_typed_one(
        worker: WorkerProcess, connection: Connection) -> None:
    client = Client(connection, codec=CODEC)
    handle = await client.start_workflow("CodecOrder", f"codec-{ULID()}", {"order": ORDER, "fee": FEE})
    await wait_history(client, handle.wf_id, "step.completed", step="deposit_held")
    await handle.send("pay", {"payment": Money(Decimal("1"), "USD")})
    raw: Any = await handle.future  # as the public SDK: the result as it travelled
    assert raw["paid"] == {"amount": "1", "currency": "USD"}
    assert await handle.result(return_type=Receipt) == Receipt(
        order_id="O-7", total=Money(Decimal("41.78"), "EUR"), paid=Money(Decimal("1"), "USD"),
        deposit_held=Money(Decimal("5.00"), "EUR"))


async def test_a_client_without_the_codec_refuses_the_custom_type_before_sending(
        worker: WorkerProcess, connection: Connection) -> None:
    wf_id = f"codec-{ULID()}"
    with pytest.raises(TypeError, match="Money"):
        await Client(connection).start_workflow("CodecOrder", wf_id, {"order": ORDER, "fee": FEE})
    with pytest.raises(WorkflowNotFoundError):
        await Client(connection).describe(wf_id)
