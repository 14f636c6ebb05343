"""Fixtures of the SDK tests: a Client and in-process Workers on a running engine (a test module may
define its own under the same names)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.sdk import StartWorker, workers

from grctl.client.client import Client
from grctl.nats.connection import Connection


@pytest.fixture
async def client(engine: Any, connection: Connection) -> Client:
    return Client(connection)


@pytest.fixture
async def start_worker(engine: Any, nats_url: str) -> AsyncIterator[StartWorker]:
    async with workers(nats_url) as start:
        yield start
