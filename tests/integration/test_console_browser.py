"""The web console in a real browser (headless Chromium, Selenium) against a real engine process
(``grctl engine --http``) and a real worker process: the runs list to a failed run (its error,
traceback and timeline), a running run cancelled through the confirmation page, and workflow ids and
payloads holding HTML shown as text. Saves the README's screenshots (see ``support.browser``)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from support.browser import absent, chromium, screenshot
from support.cli_run import ROOT
from support.processes import ChildProcess, WorkerProcess
from support.scrape import wait_status

from grctl.client.client import Client
from grctl.models.common import RunStatus
from grctl.nats.connection import Connection
from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(180)

HOSTILE_ID = "order<svg/onload=alert(1)//"
HOSTILE_NOTE = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"


@pytest.fixture
async def console(nats_url: str, subprocess_env: dict[str, str]) -> AsyncIterator[str]:
    """The console's URL, on an engine process with a worker process serving ``ProcessOrder``."""
    port = free_port()
    engine = ChildProcess([sys.executable, "-m", "grctl", "engine", "-s", nats_url, "--http",
                           f"127.0.0.1:{port}"], subprocess_env, cwd=ROOT).start()
    worker = WorkerProcess("support.wf_console", subprocess_env).start()
    try:
        await wait_status(f"http://127.0.0.1:{port}/readyz", 200)
        await worker.ready()
        yield f"http://127.0.0.1:{port}"
    finally:
        worker.kill()
        engine.stop()


def holds(check: Callable[[], bool]) -> bool:
    """``check()``, False while the live update is replacing what it reads."""
    try:
        return check()
    except (StaleElementReferenceException, NoSuchElementException):
        return False


async def until(check: Callable[[], bool], what: str, timeout: float = 60.0,
                reload: WebDriver | None = None) -> None:
    """Until ``check()`` holds (reloading ``reload``'s page between tries, when given)."""
    deadline = time.monotonic() + timeout
    while not holds(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
        if reload is not None:
            reload.refresh()


def bars(browser: WebDriver) -> list[tuple[str, str]]:
    """The timeline's rows: (kind, label)."""
    return [(row.get_attribute("class").split("tl-")[-1].strip(),
             row.find_element(By.CSS_SELECTOR, ".tl-label").get_attribute("title"))
            for row in browser.find_elements(By.CSS_SELECTOR, ".tl-row")]


async def test_from_the_runs_list_to_a_failed_run_and_html_shown_as_text(
        console: str, connection: Connection, tmp_path: Path) -> None:
    client = Client(connection)
    await client.run_workflow("ProcessOrder", "order-1001", {"order_id": "A-1001", "amount": 42})
    declined = await client.start_workflow("ProcessOrder", "order-1002",
                                           {"order_id": "A-1002", "amount": 990, "mode": "decline"})
    with pytest.raises(Exception, match="card declined"):
        await declined.result(timeout=60)
    await client.start_workflow("ProcessOrder", HOSTILE_ID,
                                {"order_id": "A-1003", "amount": 5, "mode": "hold", "note": HOSTILE_NOTE})
    await client.run_workflow("ProcessOrder", "order-1004", {"order_id": "A-1004", "amount": 7})

    with chromium() as browser:
        browser.get(f"{console}/")
        await until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")) == 4,
                    "the four runs to be listed", reload=browser)
        assert browser.find_element(By.CSS_SELECTOR, "a.chip.st-failed b").text == "1"
        assert browser.find_element(By.ID, "stuck-chip").text == "Stuck 0"
        screenshot(browser, tmp_path, "runs")

        browser.find_element(By.CSS_SELECTOR, "a.chip.st-failed").click()
        rows = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
        assert [r.find_element(By.CSS_SELECTOR, "td.id a").text for r in rows] == ["order-1002"]
        rows[0].find_element(By.LINK_TEXT, "order-1002").click()

        assert browser.find_element(By.ID, "run-status").text.lower() == "failed"
        error = browser.find_element(By.ID, "error").text
        assert "CardDeclinedError: card declined for order A-1002 (amount 990)" in error
        assert "Traceback (most recent call last)" in error and "charge_card" in error
        assert bars(browser) == [("step", "start"), ("timer", "sleep 0.2 s"), ("step", "charge"),
                                 ("task", "charge › charge_card")], bars(browser)
        assert browser.find_element(By.CSS_SELECTOR, ".tl-task .tl-retries").text == "2 retries"
        assert len(browser.find_elements(By.CSS_SELECTOR, ".tl-task rect.tl-retry")) == 2
        assert browser.find_elements(By.CSS_SELECTOR, ".tl-step .tl-bar.o-failed")
        kinds = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#history .kind")]
        assert kinds[0] == "run.started" and kinds[-1] == "run.failed"
        assert kinds.count("task.attempt_failed") == 2
        trace = browser.find_element(By.CSS_SELECTOR, "#error details pre.trace")
        assert trace.is_displayed() and "charge_card" in trace.text  # unfolded, as the README shows it
        screenshot(browser, tmp_path, "run-failed", height=1250)  # the README: its error, traceback, timeline

        failed_run = browser.find_element(By.CSS_SELECTOR, ".facts dd.mono").text
        browser.find_element(By.ID, "do-retry").click()
        assert "Retry run" in browser.find_element(By.CSS_SELECTOR, ".question").text
        browser.find_element(By.ID, "confirm").click()
        assert "Retried" in browser.find_element(By.ID, "notice").text
        assert failed_run in browser.find_element(By.ID, "summary").text  # "Retry of" the failed run
        retried = await client.describe("order-1002")
        assert retried.retry_of == failed_run and retried.id != failed_run

        browser.get(f"{console}/?q=order%3C")  # the id prefix filter, with the id's "<"
        link = browser.find_element(By.CSS_SELECTOR, "td.id a")
        assert link.text == HOSTILE_ID
        link.click()
        assert browser.find_element(By.ID, "run-title").text == HOSTILE_ID
        assert HOSTILE_NOTE.replace('"', '\\"') in browser.find_element(By.ID, "input").text
        assert absent(browser, "main img, main svg[onload], #input b")
        assert browser.title != "pwned"
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 (reading it is the test)


async def test_cancel_a_running_run_after_confirming(console: str, connection: Connection,
                                                     tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:  # no credentials: a rebound host name is refused
        async with session.get(f"{console}/", headers={"Host": "rebound.example:80"}) as resp:
            assert resp.status == 421
        async with session.get(f"{console}/healthz", headers={"Host": "rebound.example:80"}) as resp:
            assert resp.status == 200
    client = Client(connection)
    await client.start_workflow("ProcessOrder", "order-2001",
                                {"order_id": "B-2001", "amount": 3, "mode": "hold"})
    with chromium() as browser:
        browser.get(f"{console}/run?id=order-2001")
        await until(lambda: ("wait", "wait for an event") in bars(browser), "the run to wait for its event",
                    reload=browser)
        assert browser.find_element(By.ID, "run-status").text.lower() == "running"
        screenshot(browser, tmp_path, "run-waiting", height=1100)
        browser.find_element(By.ID, "do-cancel").click()
        assert "Cancel run" in browser.find_element(By.CSS_SELECTOR, ".question").text
        assert (await client.describe("order-2001")).status == RunStatus.running  # asked, not done
        browser.find_element(By.ID, "reason").send_keys("customer called")
        browser.find_element(By.ID, "confirm").click()
        assert "Cancel requested" in browser.find_element(By.ID, "notice").text
        await until(lambda: browser.find_element(By.ID, "run-status").text.lower() == "cancelled",
                    "the live page to show the run cancelled")
        assert (await client.describe("order-2001")).status == RunStatus.cancelled
        history = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#history .kind")]
        assert history[-1] == "run.cancelled"
        assert "customer called" in browser.find_element(By.ID, "history").text

        browser.get(f"{console}/workers")
        assert browser.find_element(By.CSS_SELECTOR, ".wtype h2").text == "ProcessOrder"
        assert browser.find_element(By.CSS_SELECTOR, ".wtype td.mono").text.startswith("w_")
        stats = browser.find_element(By.CSS_SELECTOR, ".wtype .stats").text
        assert "0\nsteps in flight" in stats and "0\nsteps waiting for a worker" in stats, stats
        screenshot(browser, tmp_path, "workers", height=900)
        browser.get(f"{console}/schedules")
        assert "No schedule is in force" in browser.find_element(By.CSS_SELECTOR, "table.schedules").text
