"""The public SDK's example programs run unchanged on our SDK, against a real engine and nats-server.

Each example is copied to ``<tmp>/examples`` (they import one another as ``examples.*``) and run as a
real process with this repository's ``grctl``: its ``main()``, or its worker and its starter for the
two-process ones. Every test checks what the example prints and what the engine recorded.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.processes import ChildProcess
from support.reference import EXAMPLES, ROOT, require_reference

from grctl.client import Client, Connection, WorkflowRunFinishedError
from grctl.models import HistoryEvent, RunInfo, RunStatus
from grctl.nats import subjects

pytestmark = pytest.mark.timeout(180)

# Proves which grctl the example imported, then runs its main().
RUN_MAIN = ("import asyncio, importlib, sys, grctl; print('GRCTL FROM', grctl.__file__, flush=True); "
            "asyncio.run(importlib.import_module('examples.' + sys.argv[1]).main())")
FAILED = "Workflow execution failed"  # what every example logs when anything raised


@dataclass
class Stack:
    workdir: Path  # holds the copy of the examples as the package ``examples``
    env: dict[str, str]  # for the example processes: our grctl, the test's NATS server
    client: Client  # ours, to look at what the engine recorded


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(require_reference(EXAMPLES), tmp_path / "examples")
    return tmp_path


@pytest.fixture
async def stack(workdir: Path, engine_process: Any, nats_url: str,
                subprocess_env: dict[str, str]) -> AsyncIterator[Stack]:
    """A nats-server and an engine process (only once the examples were found)."""
    connection = await Connection.connect([nats_url])
    try:
        yield Stack(workdir, subprocess_env, Client(connection))
    finally:
        await connection.close()


async def run_main(name: str, stack: Stack, timeout: float = 120) -> str:
    """Run ``examples.<name>.main()`` to its end; its output (it must exit 0 and use our grctl)."""
    proc = ChildProcess([sys.executable, "-c", RUN_MAIN, name], stack.env, cwd=stack.workdir).start()
    try:
        code = await asyncio.to_thread(proc.wait, timeout)
    finally:
        proc.stop()
    await asyncio.to_thread(proc.wait_for_line, "GRCTL FROM", 5)  # the reader thread caught up
    output = proc.output
    assert code == 0, output
    assert f"GRCTL FROM {ROOT / 'grctl'}" in output, output
    return output


async def wait_for_text(proc: ChildProcess, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.output:
        if proc.proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"process exited before printing {text!r}:\n{proc.output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} within {timeout}s:\n{proc.output}")
        await asyncio.sleep(0.05)


def logged_result(output: str, label: str = "Workflow result: ") -> str:
    """The text after the example's result label; fails when the example logged an error instead."""
    assert FAILED not in output, output
    found = re.search(re.escape(label) + r"(.*)$", output, re.MULTILINE)
    assert found, output
    return found.group(1)


async def runs(client: Client) -> dict[str, list[tuple[RunInfo, list[HistoryEvent]]]]:
    """Every run the engine recorded, by workflow type (the examples make up their workflow ids)."""
    info = await client.connection.js.stream_info(subjects.STREAM, subjects_filter=subjects.history("*", "*"))
    by_type: dict[str, list[tuple[RunInfo, list[HistoryEvent]]]] = {}
    for subject in info.state.subjects or {}:
        _, wf_id, _run_id = subject.split(".")
        run = await client.describe(wf_id)
        by_type.setdefault(run.wf_type, []).append((run, await client.get_history(wf_id)))
    return by_type


def result_of(history: list[HistoryEvent]) -> Any:
    done = [e for e in history if str(e.kind) == "run.completed"]
    assert len(done) == 1, [str(e.kind) for e in history]
    return done[0].msg.result


def only_run(found: dict[str, list[tuple[RunInfo, list[HistoryEvent]]]],
             wf_type: str) -> tuple[RunInfo, list[HistoryEvent]]:
    assert len(found.get(wf_type, [])) == 1, {t: len(r) for t, r in found.items()}
    run, history = found[wf_type][0]
    assert run.status == RunStatus.completed, (run, [str(e.kind) for e in history])
    return run, history


# --- one process: main() starts a worker and a client on one connection ----------------------------


async def test_hello_world(stack: Stack) -> None:
    output = await run_main("hello_world", stack)
    assert logged_result(output) == "Hello, World!"
    _, history = only_run(await runs(stack.client), "Hello")
    assert result_of(history) == "Hello, World!"
    assert [e.msg.task_name for e in history if str(e.kind) == "task.completed"] == ["call_greeting_api"]


async def test_child_workflow(stack: Stack) -> None:
    output = await run_main("child_workflow", stack)
    message = logged_result(output, "Order workflow result: ")
    found = re.fullmatch(r"Order ORDER-001 completed with payment status: success transaction_id: (\S{8})",
                         message)
    assert found, message
    recorded = await runs(stack.client)
    order, order_history = only_run(recorded, "Order")
    payment, payment_history = only_run(recorded, "Payment")
    assert result_of(order_history) == message
    assert result_of(payment_history) == {"status": "success", "transaction_id": found.group(1)}
    assert (payment.parent_wf_id, payment.parent_run_id) == (order.wf_id, order.id)
    received = [(e.msg.event_name, e.msg.payload) for e in order_history if str(e.kind) == "event.received"]
    assert received == [("payment_completed", result_of(payment_history))]


async def test_async_child_workflows(stack: Stack) -> None:
    output = await run_main("async_child_workflows", stack)
    message = logged_result(output, "Orchestrator workflow result: ")
    found = re.fullmatch(r"Orchestrator completed: input_a=hello -> (result-a-[0-9a-f]{6}), "
                         r"input_b=world -> (result-b-[0-9a-f]{6})", message)
    assert found, message
    recorded = await runs(stack.client)
    _, parent_history = only_run(recorded, "Orchestrator")
    assert result_of(parent_history) == message
    assert result_of(only_run(recorded, "TaskA")[1]) == {"result": found.group(1)}
    assert result_of(only_run(recorded, "TaskB")[1]) == {"result": found.group(2)}
    events = sorted(e.msg.event_name for e in parent_history if str(e.kind) == "event.received")
    assert events == ["task_a_completed", "task_b_completed"]


async def test_loop_the_loop(stack: Stack) -> None:
    output = await run_main("loop_the_loop", stack)
    assert logged_result(output) == "1000"
    _, history = only_run(await runs(stack.client), "LoopTheLoop")
    assert result_of(history) == 1000
    steps = [e.msg.step_name for e in history if str(e.kind) == "step.completed"]
    assert steps == ["start"] + ["incr_step"] * 100
    assert sum(1 for e in history if str(e.kind) == "task.completed") == 1000


async def test_loop_the_event(stack: Stack) -> None:
    """1000 events for a run that completes after 100 of them. Sends usually all land while the run is
    going (they are queued in its inbox); one that reaches the run after it completed raises
    ``WorkflowRunFinishedError``, which the example logs as a failure (ours raises, on purpose)."""
    output = await run_main("loop_the_event", stack, timeout=150)
    run, history = only_run(await runs(stack.client), "LoopTheEvent")
    assert result_of(history) == 1000
    handled = [e for e in history if str(e.kind) == "step.completed" and e.msg.step_name == "incr_step"]
    assert len(handled) == 100
    if FAILED in output:
        assert "WorkflowRunFinishedError" in output, output
    else:
        assert logged_result(output) == "1000"
        assert sum(1 for e in history if str(e.kind) == "event.received") == 1000
    handle = await stack.client.get_handle(workflow_id=run.wf_id)
    assert await handle.future == 1000
    with pytest.raises(WorkflowRunFinishedError):
        await handle.send("incr_step")


async def test_wait_events(stack: Stack) -> None:
    output = await run_main("wait_events", stack)
    expected = "Hello, Mr Cem! Goodbye, Cem! Until next time!"
    assert logged_result(output) == expected
    _, history = only_run(await runs(stack.client), "GreetEvents")
    assert result_of(history) == expected
    received = [(e.msg.event_name, e.msg.payload) for e in history if str(e.kind) == "event.received"]
    assert received == [("greet", {"title": "Mr"}), ("farewell", {"farewell_note": "Until next time!"})]


async def test_pydantic_models(stack: Stack) -> None:
    pytest.importorskip("pydantic")
    output = await run_main("pydantic_models", stack)
    expected = {"order_id": "ORD-001", "customer": "Alice", "total": 107.99, "payment_status": "approved",
                "transaction_id": "TXN-XYZ"}
    assert logged_result(output) == repr(expected)
    _, history = only_run(await runs(stack.client), "Orders")
    assert result_of(history) == expected
    started = next(e.msg for e in history if str(e.kind) == "task.started")
    assert started.task_name == "enrich_order"
    assert started.args == {"order": {"order_id": "ORD-001", "customer": "Alice", "amount": 99.99,
                                      "currency": "USD"}}


# --- two processes: a worker, and a program (or our CLI) that starts the runs -------------------------


def example(module: str, stack: Stack, *args: str) -> ChildProcess:
    command = [sys.executable, "-m", f"examples.{module}", *args]
    return ChildProcess(command, stack.env, cwd=stack.workdir).start()


async def test_ticker_worker_and_starter(stack: Stack) -> None:
    worker = example("ticker", stack, "worker")
    try:
        await wait_for_text(worker, "ready (ack wait")  # registered and consuming
        starter = example("ticker", stack, "start")
        assert await asyncio.to_thread(starter.wait, 30) == 0, starter.output
        await wait_for_text(starter, "Workflow ticker-workflow submitted.")
        handle = await stack.client.get_handle(workflow_id="ticker-workflow")
        assert await asyncio.wait_for(handle.future, timeout=60) == 10
        await wait_for_text(worker, "Tick iteration: 9")
        worker.signal(signal.SIGINT)  # the example stops its worker when cancelled
        await asyncio.to_thread(worker.wait, 30)
        assert "Worker stopped." in worker.output
    finally:
        worker.stop()
    _, history = only_run(await runs(stack.client), "Ticker")
    assert [e.msg.output["result"] for e in history if str(e.kind) == "task.completed"] == list(range(10))


async def test_demo_worker_with_our_cli(stack: Stack) -> None:
    """The demo worker serves Hello and Payment; the input files go through ``grctl run --input @FILE``.
    Payment calls ``ctx.send_to_parent`` and, started on its own, has no parent: the documented
    ``RuntimeError`` fails the run."""
    worker = example("demo_worker", stack)
    try:
        await wait_for_text(worker, "ready (ack wait")

        def grctl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "grctl", *args], env=stack.env, cwd=stack.workdir,
                                  capture_output=True, text=True, timeout=60)

        hello = await asyncio.to_thread(grctl, "run", "Hello", "--id", "demo-hello", "--input",
                                        "@examples/hello_input.json")
        assert (hello.returncode, json.loads(hello.stdout)) == (0, "Hello, World!"), hello
        payment = await asyncio.to_thread(grctl, "run", "Payment", "--id", "demo-payment", "--input",
                                          "@examples/payment_input.json", "--timeout", "30")
        assert payment.returncode == 1, payment
        assert "RuntimeError" in payment.stderr and "no parent" in payment.stderr, payment
    finally:
        worker.stop()
    failed = [e for e in await stack.client.get_history("demo-payment") if str(e.kind) == "step.failed"]
    assert [(e.msg.step_name, e.msg.error.type) for e in failed] == [("payment_record", "RuntimeError")]
