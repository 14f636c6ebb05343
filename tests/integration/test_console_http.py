"""The console's HTTP side against a real engine process (``grctl engine -c FILE`` with console
credentials) and a real worker process: roles, CSRF, the operations endpoints left open, a reverse
proxy's path prefix, actions refused with the command line's words, a bulk cancel and a bulk retry by
filter, a bulk action from the Stuck view, an event sent, a run started and one terminated, the Run
page's store, result, parent and children (escaped), the Workers page's step rates, schedules paused,
resumed and triggered; and an open console on a non-loopback address refused at start."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote, urlencode

import aiohttp
import pytest
from markupsafe import escape
from support.cli_run import ROOT
from support.processes import ChildProcess, WorkerProcess
from support.scrape import aget, value, wait_status, wait_value

from grctl.client.client import Client
from grctl.client.schedules import ScheduleCommands
from grctl.models.common import RunStatus
from grctl.models.history import HistoryKind
from grctl.models.schedule import ScheduleSpec
from grctl.nats.connection import Connection
from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(120)

ADMIN = {"Authorization": "Bearer admin-secret-1"}
VIEWER = {"Authorization": "Bearer viewer-secret-1"}
HOLD = {"order_id": "H", "amount": 1, "mode": "hold"}  # a run that waits for an event
BULK_FORM = '<form class="bulk" method="post" action="/act">'
BULK_BUTTON = '<button name="action" value="bulk_cancel" class="warn">Cancel the active ones…</button>'


@pytest.fixture
async def base(nats_url: str, subprocess_env: dict[str, str], tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    (tmp_path / "viewer").write_text("viewer-secret-1\n")
    config = tmp_path / "grctl.yaml"
    config.write_text(f"nats:\n  servers: ['{nats_url}']\nengine:\n  http:\n    listen: 127.0.0.1:{port}\n"
                      "    console:\n      admin_password: admin-secret-1\n"
                      "      viewer_password_file: viewer\n")
    config.chmod(0o600)
    engine = ChildProcess([sys.executable, "-m", "grctl", "engine", "-c", str(config)], subprocess_env,
                          cwd=ROOT).start()
    worker = WorkerProcess("support.wf_console_batch", subprocess_env).start()
    try:
        await wait_status(f"http://127.0.0.1:{port}/readyz", 200)
        await worker.ready()
        yield f"http://127.0.0.1:{port}"
    finally:
        worker.kill()
        engine.stop()


def session(headers: dict[str, str]) -> aiohttp.ClientSession:
    """A browser-like session: it keeps the cookies of an address given as an IP."""
    return aiohttp.ClientSession(headers=headers, cookie_jar=aiohttp.CookieJar(unsafe=True))


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def test_roles_csrf_and_the_open_operations_endpoints(base: str, connection: Connection) -> None:
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/healthz", "/readyz", "/metrics"):
            async with anonymous.get(base + path) as resp:
                assert resp.status == 200, path
        async with anonymous.get(base + "/") as resp:
            assert resp.status == 401 and "Basic" in resp.headers["WWW-Authenticate"]
    await Client(connection).start_workflow("ProcessOrder", "held", HOLD)
    async with session(ADMIN) as admin:  # what a viewer must not get: the bulk actions' form
        async with admin.get(base + "/") as resp:
            page = await resp.text()
        assert BULK_FORM in page and BULK_BUTTON in page, page
    async with session(VIEWER) as viewer:
        async with viewer.get(base + "/") as resp:
            page = await resp.text()
            assert resp.status == 200 and ">viewer<" in page
            assert BULK_FORM not in page and BULK_BUTTON not in page and 'action="/act"' not in page
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        async with viewer.post(base + "/act", data={"action": "cancel", "id": "held",
                                                     "csrf": csrf_of_any(viewer)}) as resp:
            assert resp.status == 403 and "read-only" in await resp.text()
    async with session(ADMIN) as admin:
        async with admin.get(base + "/run?id=held") as resp:
            token = csrf_of(await resp.text())
        form = {"action": "cancel", "id": "held", "csrf": token}
        async with admin.post(base + "/act", data={**form, "csrf": "forged"}) as resp:
            assert resp.status == 403 and "CSRF" in await resp.text()
        async with admin.post(base + "/act", data=form, headers={"Origin": "http://evil.example"}) as resp:
            assert resp.status == 403
        async with admin.post(base + "/act", data=form) as resp:  # the confirmation page, nothing done
            assert resp.status == 200 and "Please confirm" in await resp.text()
        assert (await Client(connection).describe("held")).status == RunStatus.running
        async with admin.post(base + "/act", data={**form, "confirmed": "1"}, allow_redirects=False) as resp:
            assert resp.status == 303 and "done=cancel" in resp.headers["Location"]
        handle = await Client(connection).get_workflow_handle("held")
        with pytest.raises(Exception, match="cancel"):
            await handle.result(timeout=30)
        async with admin.post(base + "/act", data={**form, "confirmed": "1"}) as resp:
            assert resp.status == 409
            assert "the latest run of workflow &#39;held&#39; has already finished" in await resp.text()


def csrf_of_any(session: aiohttp.ClientSession) -> str:
    """The CSRF cookie the session was given (a viewer's token is refused all the same)."""
    return next((c.value for c in session.cookie_jar if c.key == "grctl_csrf"), "none")


async def test_actions_explain_refusals_and_bulk_cancel_and_retry_act_on_the_filter(base: str,
                                                                            connection: Connection) -> None:
    client = Client(connection)
    for i in range(3):
        await client.start_workflow("ProcessOrder", f"bulk-{i}", HOLD)
    await client.start_workflow("ProcessOrder", "other-1", HOLD)
    declined = await client.start_workflow("ProcessOrder", "decl-1", {**HOLD, "mode": "decline"})
    with pytest.raises(Exception, match="card declined"):
        await declined.result(timeout=60)
    async with session(ADMIN) as admin:
        async with admin.get(base + "/start") as resp:
            token = csrf_of(await resp.text())
        start = {"action": "start", "csrf": token, "confirmed": "1", "type": "NoSuchFlow", "id": "x1"}
        async with admin.post(base + "/act", data=start) as resp:
            assert resp.status == 409
            assert "workflow type &#39;NoSuchFlow&#39; is not registered" in await resp.text()
        start["type"] = "ProcessOrder"
        async with admin.post(base + "/act", data={**start, "input": "{oops"}) as resp:
            assert resp.status == 409 and "the input is not valid JSON" in await resp.text()
        async with admin.post(base + "/act", data={**start, "id": "bad id"}) as resp:
            assert resp.status == 409 and "must not contain" in await resp.text()
        bulk = {"action": "bulk_cancel", "csrf": token, "q": "bulk-"}
        for _ in range(50):  # the index follows the stream a moment after each commit
            async with admin.post(base + "/act", data=bulk) as resp:
                page = await resp.text()
            if "<b>3</b> active runs" in page:
                break
            await asyncio.sleep(0.1)
        assert "<b>3</b> active runs" in page and "other-1" not in page
        async with admin.post(base + "/act", data={**bulk, "confirmed": "1", "reason": "bulk"}) as resp:
            assert resp.status == 200 and "3 done" in await resp.text()
        await bulk_retry(admin, base, token)
    for i in range(3):
        handle = await client.get_workflow_handle(f"bulk-{i}")
        with pytest.raises(Exception, match="cancel"):
            await handle.result(timeout=30)
    assert (await client.describe("other-1")).status == RunStatus.running
    assert (await client.describe("decl-1")).retry_of == declined.run_id


async def bulk_retry(admin: aiohttp.ClientSession, base: str, token: str) -> None:
    """Retry every failed run whose id starts with ``decl-`` (one), after confirming."""
    retry = {"action": "bulk_retry", "csrf": token, "q": "decl-"}
    for _ in range(50):  # the index follows the stream a moment after each commit
        async with admin.post(base + "/act", data=retry) as resp:
            page = await resp.text()
        if "<b>1</b> ended run" in page:
            break
        await asyncio.sleep(0.1)
    assert "<b>1</b> ended run" in page, page
    async with admin.post(base + "/act", data={**retry, "confirmed": "1"}) as resp:
        assert resp.status == 200 and "1 done" in await resp.text()


async def test_behind_a_proxy_every_link_carries_the_prefix(base: str) -> None:
    async with session({**VIEWER, "X-Forwarded-Prefix": "/ops/grctl/"}) as viewer:
        async with viewer.get(base + "/workers") as resp:
            page = await resp.text()
    links = re.findall(r'(?:href|src|action)="([^"]+)"', page)
    assert links and all(link.startswith("/ops/grctl/") for link in links), links
    async with session({**VIEWER, "X-Forwarded-Prefix": "/x\"><script>"}) as viewer:
        async with viewer.get(base + "/workers") as resp:
            assert 'href="/static/console.css"' in await resp.text()  # an odd prefix is ignored
        for query in ("id=*&run=*", "id=%3E", "id=a.b&run=x"):  # wildcards never reach a subject
            async with viewer.get(f"{base}/run?{query}") as resp:
                assert resp.status == 404, query
            async with viewer.get(f"{base}/run/live?{query}") as resp:
                assert resp.status == 404, query


def test_an_open_console_on_a_public_address_is_refused_at_start(subprocess_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "grctl", "engine", "--http", f"0.0.0.0:{free_port()}"],
                          env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "open to the network" in done.stderr and "admin_password" in done.stderr


async def test_schedules_are_listed_paused_resumed_and_triggered(base: str, connection: Connection) -> None:
    spec = ScheduleSpec(workflow="ProcessOrder", input=HOLD, cron="0 3 * * *")
    await ScheduleCommands(connection, "c:test").declare("test-host:a", {"nightly": spec})
    client = Client(connection)
    async with session(ADMIN) as admin:
        async with admin.get(base + "/schedules") as resp:
            page = await resp.text()
        assert resp.status == 200 and ">nightly</td>" in page and "0 3 * * *" in page, page
        form = {"csrf": csrf_of(page), "id": "nightly"}
        async with admin.post(base + "/schedule", data={**form, "action": "schedule_pause"}) as resp:
            assert "Pause schedule" in await resp.text()  # asked first
        assert not (await client.list_schedules())[0].state.operator_paused
        async with admin.post(base + "/schedule", data={**form, "action": "schedule_pause", "confirmed": "1",
                                                         "reason": "db upgrade"}) as resp:
            page = await resp.text()
            assert resp.status == 200 and "Paused" in page and "db upgrade" in page
        assert (await client.list_schedules())[0].state.operator_paused
        confirmed = {**form, "confirmed": "1"}
        async with admin.post(base + "/schedule", data={**confirmed, "action": "schedule_resume"}):
            pass
        assert not (await client.list_schedules())[0].state.operator_paused
        async with admin.post(base + "/schedule", data={**confirmed, "action": "schedule_trigger"}) as resp:
            page = await resp.text()
    started = re.search(r'run\?id=(nightly%40[^"&]+)', page)
    assert started, page
    assert (await client.describe(unquote(started.group(1)))).wf_type == "ProcessOrder"


async def until_true(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def page_of(http: aiohttp.ClientSession, url: str, wanted: str) -> str:
    """The page at ``url`` once it shows ``wanted`` (the run index follows the stream a moment after
    each commit)."""
    for _ in range(100):
        async with http.get(url) as resp:
            page = await resp.text()
        if wanted in page:
            return page
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never showed {wanted!r}:\n{page}")


def hidden_fields(form: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))


async def test_a_bulk_action_from_the_stuck_view_acts_on_the_stuck_runs_only(base: str,
                                                                              connection: Connection) -> None:
    client = Client(connection)
    for i in range(2):
        await client.start_workflow("ProcessOrder", f"live-{i}", HOLD)
    await client.start_workflow("ProcessOrder", "live-stuck", {"order_id": "S"})  # no amount: cannot bind

    async def stuck() -> bool:
        return (await client.describe("live-stuck")).stuck is not None

    await until_true(stuck, "the run to be stuck")
    async with session(ADMIN) as admin:  # the Stuck chip's view, its bulk form as the browser posts it
        page = await page_of(admin, base + "/?stuck=1&q=live-", "Stuck <b>1</b>")
        form = re.search(r'<form class="bulk".*?</form>', page, re.S)
        assert form and 'value="bulk_terminate"' in form.group(0), page
        fields = hidden_fields(form.group(0))
        assert fields["stuck"] == "1" and fields["q"] == "live-"
        for action, question in (("bulk_cancel", "Cancel <b>1</b> active run?"),
                                 ("bulk_terminate", "Terminate <b>1</b> active run?")):
            async with admin.post(base + "/act", data={**fields, "action": action}) as resp:
                page = await resp.text()
            assert question in page and "live-stuck" in page, page
            assert "live-0" not in page and "live-1" not in page
            assert '<input type="hidden" name="stuck" value="1">' in page  # carried to the confirmed post
        confirmed = {**hidden_fields(page), "reason": "no fix coming"}
        async with admin.post(base + "/act", data=confirmed) as resp:
            assert resp.status == 200 and "Terminate: 1 done" in await resp.text()

    async def terminated() -> bool:
        return (await client.describe("live-stuck")).status == RunStatus.terminated

    await until_true(terminated, "the stuck run to be terminated")
    for i in range(2):
        assert (await client.describe(f"live-{i}")).status == RunStatus.running


async def waiting(client: Client, wf_id: str) -> None:
    async def check() -> bool:
        return any(e.kind == HistoryKind.wait_started for e in await client.get_history(wf_id))

    await until_true(check, f"{wf_id} to wait for its event")


async def test_send_an_event_start_a_run_and_terminate_one(base: str, connection: Connection) -> None:
    client = Client(connection)
    await client.start_workflow("ProcessOrder", "evt-1", HOLD)
    await client.start_workflow("ProcessOrder", "term-1", HOLD)
    await waiting(client, "evt-1")
    async with session(ADMIN) as admin:
        async with admin.get(base + "/run?id=evt-1") as resp:
            page = await resp.text()
        assert 'id="do-send"' in page and '<option value="approve">' in page
        send = {"action": "send", "csrf": csrf_of(page), "id": "evt-1", "event": "approve",
                "payload": '{"by": "ops <b>1</b>"}'}
        async with admin.post(base + "/act", data=send) as resp:
            page = await resp.text()
        assert "Send the event <b>approve</b>" in page and "ops &lt;b&gt;1&lt;/b&gt;" in page, page
        async with admin.post(base + "/act", data={**send, "confirmed": "1"}, allow_redirects=False) as resp:
            assert resp.status == 303 and "done=send" in resp.headers["Location"]
        handle = await client.get_workflow_handle("evt-1")
        assert await handle.result(timeout=30) == {"receipt": "receipt-H", "carrier": "DHL"}
        received = [e.msg for e in await client.get_history("evt-1") if e.kind == HistoryKind.event_received]
        assert [(m.event_name, m.payload) for m in received] == [("approve", {"by": "ops <b>1</b>"})]

        start = {"action": "start", "csrf": send["csrf"], "type": "ProcessOrder", "id": "started-1",
                 "input": '{"order_id": "N1", "amount": 3}', "timeout": "60"}
        async with admin.post(base + "/act", data=start) as resp:
            assert "Start a run of <b>ProcessOrder</b>" in await resp.text()
        with pytest.raises(Exception, match="not found"):
            await client.describe("started-1")  # asked, not done
        async with admin.post(base + "/act", data={**start, "confirmed": "1"}) as resp:
            page = await resp.text()  # the redirect followed: the new run's page
        assert "Run started." in page and 'id="run-title">started-1<' in page
        info = await client.describe("started-1")
        assert info.wf_type == "ProcessOrder" and info.timeout_seconds == 60 and info.id in str(resp.url)
        first = (await client.get_history("started-1"))[0]
        assert first.kind == HistoryKind.run_started and first.msg.input == {"order_id": "N1", "amount": 3}
        handle = await client.get_workflow_handle("started-1")
        assert await handle.result(timeout=30) == {"receipt": "receipt-N1", "carrier": "DHL"}

        run_id = (await client.describe("term-1")).id
        term = {"action": "terminate", "csrf": send["csrf"], "id": "term-1", "run": run_id,
                "reason": "wrong address"}
        async with admin.post(base + "/act", data=term) as resp:
            assert f"Terminate run <span class=\"mono\">{run_id}</span>" in await resp.text()
        assert (await client.describe("term-1")).status == RunStatus.running  # asked, not done
        async with admin.post(base + "/act", data={**term, "confirmed": "1"}, allow_redirects=False) as resp:
            assert resp.status == 303 and "done=terminate" in resp.headers["Location"]

    async def terminated() -> bool:  # asked of the engine; applied as its directive, a moment later
        return (await client.describe("term-1")).status == RunStatus.terminated

    await until_true(terminated, "term-1 to be terminated")
    history = await client.get_history("term-1")
    assert history[-1].kind == HistoryKind.run_terminated and history[-1].msg.reason == "wrong address"


def run_link(wf_id: str, run_id: str) -> str:
    """A link to a run as the Run page writes it, its id escaped."""
    return f'<a href="{escape("/run?" + urlencode({"id": wf_id, "run": run_id}))}">{escape(wf_id)}</a>'


async def test_the_run_page_shows_store_result_parent_and_children_escaped_and_workers_step_rates(
        base: str, connection: Connection) -> None:
    client = Client(connection)
    batch = 'batch<b"&1'  # a subject token may hold these, and the page must show them as text
    parent = await client.start_workflow("OrderBatch", batch, {"order_id": "<i>A</i>"})
    assert await parent.result(timeout=60) == {"orders": [{"receipt": "receipt-<i>A</i>", "carrier": "DHL"}]}
    child = await client.describe(f"{batch}-order")
    declined = await client.start_workflow("ProcessOrder", "decl-2", {**HOLD, "mode": "decline"})
    with pytest.raises(Exception, match="card declined"):
        await declined.result(timeout=60)
    async with session(VIEWER) as viewer:
        async with viewer.get(f"{base}/run", params={"id": batch, "run": parent.run_id}) as resp:
            page = await resp.text()
        assert "<dt>Children</dt>" in page and run_link(child.wf_id, child.id) in page, page
        result = re.search(r'<pre class="json" id="result">(.*?)</pre>', page, re.S)
        assert result and "receipt-&lt;i&gt;A&lt;/i&gt;" in result.group(1) and "DHL" in result.group(1)
        assert batch not in page and "<i>" not in page
        async with viewer.get(f"{base}/run", params={"id": child.wf_id, "run": child.id}) as resp:
            page = await resp.text()
        assert "<dt>Parent</dt>" in page and run_link(batch, parent.run_id) in page, page
        store = re.search(r'<table class="kv">(.*?)</table>', page, re.S)
        assert store, page
        keys = re.findall(r'<th class="mono">([^<]*)</th>', store.group(1))
        assert sorted(keys) == ["order", "receipt"], keys
        assert store.group(1).count("&lt;i&gt;A&lt;/i&gt;") == 2  # the order's id and the receipt
        assert batch not in page and "<i>" not in page
        await wait_value(f"{base}/metrics", "grctl_engine_steps_ended_total", 1, wf_type="ProcessOrder",
                         outcome="failed")
        text = (await aget(f"{base}/metrics"))[1]
        assert value(text, "grctl_engine_steps_ended_total", wf_type="ProcessOrder", outcome="completed") == 4
        assert value(text, "grctl_engine_steps_ended_total", wf_type="OrderBatch", outcome="completed") >= 1
        async with viewer.get(base + "/workers") as resp:
            page = await resp.text()
    section = next(s for s in page.split('<section class="panel wtype">') if ">ProcessOrder</a></h2>" in s)
    stats = re.findall(r"<b>([\d.]+)</b><span>(steps [^<]+ / min)</span>", section)
    rate = {label: float(n) for n, label in stats}
    assert rate["steps completed / min"] > 0 and rate["steps failed or timed out / min"] > 0, section
