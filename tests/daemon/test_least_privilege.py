"""Every role with the permissions ``grctl.nats.authconfig`` ships, on a real nats-server: each does its
whole job (the engine and a worker-only grctld run the full model: a child of another type, an event to
the parent, the store, a durable sleep, a wait timer, a retried task, cancel, terminate), and each is
refused what it must not do, at once and naming the subject, with nothing lost meanwhile."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nkeys
import pytest
from daemonkit import ROOT, Daemon, daemon_env, write_atomic
from natsauth import Operator, new_keypair, public, seed_text
from support import wf_roles
from support.guide import EXAMPLES
from support.processes import ChildProcess
from support.secured import Secured, secured_server, server_environment, violations

from grctl import settings
from grctl.client.client import Client
from grctl.models import RunInfo, utcnow
from grctl.models.command import ERR_NOT_PERMITTED, ERR_UNKNOWN_COMMAND, CommandKind, EventCmd, TerminateCmd
from grctl.models.common import RunStatus
from grctl.models.errors import WorkflowCancelledError, WorkflowError, WorkflowTerminatedError
from grctl.nats import api_client as api
from grctl.nats import authconfig, jetstream, roles, subjects
from grctl.nats.connection import Connection
from grctl.nats.probe import missing, user_info
from grctl.nats.requests import PermissionDeniedError, request
from grctl.nats.server import NatsServerProcess
from grctl.workflow.handle import start_run

pytestmark = pytest.mark.timeout(180)

ACCOUNT = "GRCTL"
REFUSED_WITHIN = 3.0  # seconds: a refusal is an answer, not a timeout (the API's is 5 s, retried)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Deployment:
    secured: Secured
    server: NatsServerProcess
    engine: ChildProcess
    worker: Daemon

    async def connect(self, role: str, name: str = "") -> Connection:
        return await self.secured.connect(self.server.url, ACCOUNT, role, name)


def grctl_files(secured: Secured, url: str, account: str, directory: Path) -> tuple[Path, Path]:
    """The engine host's and the worker host's grctl.yaml, each with its role's user."""
    directory.mkdir(parents=True, exist_ok=True)
    servers = f"nats:\n  servers: [{url}]\n"
    engine = directory / "engine.yaml"
    write_atomic(engine, "engine: {embedded: true}\n" + servers + secured.nats_section(account, "engine"))
    worker = directory / "worker.yaml"
    write_atomic(worker, "workflows: [support.wf_roles]\nshutdown_timeout: 5s\nworker: {processes: 1}\n"
                         + servers + secured.nats_section(account, "worker"))
    return engine, worker


def start_roles(secured: Secured, url: str, account: str, directory: Path) -> tuple[ChildProcess, Daemon]:
    engine_cfg, worker_cfg = grctl_files(secured, url, account, directory)
    env = daemon_env(base_env(), directory)
    engine = ChildProcess([sys.executable, "-m", "grctl", "engine", "-c", str(engine_cfg)], env, cwd=ROOT,
                          log_path=directory / "engine.log").start()
    engine.wait_for_line("engine running", timeout=60, anywhere=True)
    worker = Daemon(worker_cfg, env).start()
    worker.ready_pids(1, timeout=60)
    return engine, worker


def stop_roles(engine: ChildProcess, worker: Daemon) -> None:
    for proc in (worker, engine):
        proc.stop()


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    secured = Secured(tmp_path, {ACCOUNT: wf_roles.TYPES})
    server = secured_server(secured)
    engine = worker = None
    try:
        hosts = tmp_path / "hosts"
        engine, worker = await asyncio.to_thread(start_roles, secured, server.url, ACCOUNT, hosts)
        yield Deployment(secured, server, engine, worker)
    finally:
        if engine is not None and worker is not None:
            stop_roles(engine, worker)
        server.cleanup()


async def refused(operation: Awaitable[Any], subject: str) -> None:
    """``operation`` fails at once because the server refuses this user ``subject``."""
    began = time.monotonic()
    with pytest.raises(PermissionDeniedError) as denied:
        await operation
    assert time.monotonic() - began < REFUSED_WITHIN
    assert denied.value.subject == subject
    assert f"may not publish to {subject!r}" in str(denied.value)


async def refused_by_engine(operation: Awaitable[Any], reason: str, code: int | None = None) -> None:
    """``operation`` fails at once because the engine refuses it, saying ``reason`` (a regex)."""
    began = time.monotonic()
    with pytest.raises(WorkflowError, match=reason) as refusal:
        await operation
    assert time.monotonic() - began < REFUSED_WITHIN
    if code is not None:
        assert getattr(refusal.value, "code", None) == code, refusal.value


async def test_each_role_does_its_whole_job_and_no_more(deployment: Deployment) -> None:
    operator = Client(await deployment.connect("operator"))
    # operator: the full model, cancel, terminate, describe, list
    in_flight = [await operator.start_workflow("Order", f"order-{n}", {"n": n}) for n in range(3)]
    cancelled = await operator.start_workflow("Hold", "hold-cancel")
    busy = await operator.start_workflow("Busy", "busy-terminate")
    terminated = await operator.start_workflow("Hold", "hold-terminate")
    assert (await operator.describe("hold-cancel")).status in (RunStatus.pending, RunStatus.running)

    # worker: none of an operator's commands, no other type, no stream or foreign consumer management
    worker = await deployment.connect("worker", "refusals")
    run_id = terminated.run_id
    terminate = TerminateCmd(wf_id="hold-terminate")
    await refused(api.call(worker, "hold-terminate", CommandKind.run_terminate, terminate, "w:x"),
                  subjects.api_workflow("hold-terminate"))
    own_run = subjects.api_child("Hold", "hold-terminate", run_id)  # a live run of the worker's types
    await refused_by_engine(api.call(worker, "hold-terminate", CommandKind.run_terminate, terminate, "w:x",
                                     subject=own_run),
                            re.escape(f"run.terminate is not accepted on {own_run}"), ERR_UNKNOWN_COMMAND)
    stranger = RunInfo(id="r1", wf_id="intruder", wf_type="Secret", created_at=utcnow())
    await refused(start_run(worker, stranger, None, "w:x"), subjects.api_workflow("intruder"))
    await refused_by_engine(start_run(worker, stranger, None, "w:x", subject=own_run),
                            "starts child workflows only")
    # a start whose parent is made up: the subject that names it is refused by the engine (no such run),
    # one that names a real run refuses another parent, and another type's subject is refused by NATS
    forged = RunInfo(id="r2", wf_id="intruder", wf_type="Hold", created_at=utcnow(), parent_wf_type="Order",
                     parent_wf_id="nobody", parent_run_id="forged")
    await refused_by_engine(start_run(worker, forged, None, "w:x",
                                      subject=subjects.api_child("Order", "nobody", "forged")),
                            re.escape("the parent run, run 'forged' of Order workflow 'nobody', "
                                      "does not exist"),
                            ERR_NOT_PERMITTED)
    await refused_by_engine(start_run(worker, forged, None, "w:x", subject=own_run),
                            re.escape("not of run 'forged' of Order workflow 'nobody'"), ERR_UNKNOWN_COMMAND)
    secret = subjects.api_child("Secret", "nobody", "forged")
    await refused(start_run(worker, forged, None, "w:x", subject=secret), secret)
    # an event to another type's workflow, which is not the sending (live) run's parent: it has none
    hijack = EventCmd(wf_id="hold-cancel", event_name="finish", payload={"result": "hijacked"})
    from_busy = subjects.api_child("Busy", "busy-terminate", busy.run_id)
    await refused_by_engine(api.call(worker, "hold-cancel", CommandKind.run_event, hijack, "w:x",
                                     subject=from_busy),
                            re.escape("goes to its parent workflow only (it has none), not to 'hold-cancel'"),
                            ERR_NOT_PERMITTED)
    await refused_by_engine(api.call(worker, "hold-cancel", CommandKind.run_event, hijack, "w:x",
                                     subject=subjects.api_child("Order", "nobody", "forged")),
                            re.escape("the sending run, run 'forged' of Order workflow 'nobody', "
                                      "does not exist"),
                            ERR_NOT_PERMITTED)
    await refused(jetstream.publish(worker.nc, subjects.directive("Secret", "x", "r"), b"forged"),
                  subjects.directive("Secret", "x", "r"))
    for subject in ("$JS.API.STREAM.DELETE.grctl_state", "$JS.API.STREAM.PURGE.grctl_state",
                    "$JS.API.CONSUMER.INFO.grctl_state.grctl_worker_Secret",
                    "$JS.API.CONSUMER.MSG.NEXT.grctl_state.grctl_worker_Secret",
                    "$JS.API.CONSUMER.DELETE.grctl_state.grctl_worker_Order"):
        await refused(request(worker.nc, subject, b"{}", timeout=30), subject)

    # reader: describe, history, list; nothing that changes a run
    reader = Client(await deployment.connect("reader", "refusals"))
    await refused(reader.start_workflow("Order", "by-reader", {"n": 1}),
                  subjects.api_typed("Order", "by-reader"))
    await refused(api.call(reader.connection, "hold-cancel", CommandKind.run_terminate,
                           TerminateCmd(wf_id="hold-cancel"), "c:x"), subjects.api_workflow("hold-cancel"))

    # app: starts, signals and waits for runs of its types; no other type, no cancel, no listing
    app = Client(await deployment.connect("app"))
    assert (await app.run_workflow("Order", "by-app", {"n": 7}))["part"] == 14
    signalled = await app.start_workflow("Hold", "app-hold")
    await signalled.send("finish", {"result": "finished"})
    assert await signalled.result(timeout=30) == "finished"
    assert (await app.describe("app-hold")).status == RunStatus.completed
    await refused(app.list_runs(), subjects.API_RUNS)
    await refused(app.start_workflow("Secret", "app-secret"), subjects.api_typed("Secret", "app-secret"))
    hold_handle = await app.get_workflow_handle("hold-cancel")
    await refused(hold_handle.cancel(), subjects.api_workflow("hold-cancel"))
    # a signal on its own type's subject reaches workflows of that type only: the others do not exist
    await refused_by_engine(api.call(app.connection, "hold-cancel", CommandKind.run_event, hijack, "c:x",
                                     subject=subjects.api_typed("Order", "hold-cancel")), "not found")

    # nothing was lost: every run ends as it would have without the refusals, none was started by them
    for refused_id in ("intruder", "by-reader", "app-secret"):
        with pytest.raises(WorkflowError, match="not found"):
            await operator.describe(refused_id)
    for n, handle in enumerate(in_flight):
        assert await handle.result(timeout=60) == {"n": n, "part": 2 * n, "hello": f"part of order-{n}",
                                                    "attempts": 2}
    await (await operator.get_workflow_handle("hold-cancel")).cancel(reason="not needed")
    with pytest.raises(WorkflowCancelledError):
        await cancelled.result(timeout=30)
    await (await operator.get_workflow_handle("hold-terminate")).terminate(reason="stop")
    with pytest.raises(WorkflowTerminatedError):
        await terminated.result(timeout=30)
    assert (await operator.describe("hold-terminate")).id == run_id
    began = time.monotonic()
    await (await operator.get_workflow_handle("busy-terminate")).terminate(reason="stop the step")
    with pytest.raises(WorkflowTerminatedError):
        await busy.result(timeout=30)
    assert time.monotonic() - began < 30  # the engine asked the worker to stop the step, and it did

    described = await reader.describe("order-1")
    assert described.status == RunStatus.completed
    kinds = [e.kind for e in await reader.get_history("order-1")]
    assert "child.started" in kinds and "event.received" in kinds
    listed = {r.wf_id for r in await reader.list_runs()}
    assert {"order-0", "order-1", "order-2", "by-app", "hold-cancel", "hold-terminate"} <= listed

    # the engine and the worker needed nothing they were not given; the refusals came from the server
    log = await asyncio.to_thread(Path(deployment.server.log_file or "").read_text)
    assert violations(log, "grctl-engine") == [] and violations(log, "grctl-worker") != []
    assert not [line for line in violations(log, "grctl-worker") if "refusals" not in line]
    deployment.worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(deployment.worker.wait_exit, 30) == 0


def _logged_at(line: str) -> datetime:
    return datetime.fromisoformat(line.split()[0])


async def test_a_grctld_refused_a_permission_names_it_and_does_not_hang(tmp_path: Path) -> None:
    """A worker host whose user lacks one permission it needs (here registering, ``grctl_api.worker``):
    grctld logs the refusal naming the subject at once, its worker process ends instead of waiting for
    a reply that will never come, the supervisor tries again with growing pauses (a permission added
    on the server is then picked up), and SIGTERM still stops it."""
    secured = Secured(tmp_path, {ACCOUNT: wf_roles.TYPES})
    granted = secured.accounts_conf.read_text()
    secured.accounts_conf.write_text(granted.replace(f'"{subjects.API_WORKER}",\n', "", 1))
    assert secured.accounts_conf.read_text() != granted
    server = secured_server(secured)
    engine = worker = None
    try:
        engine_cfg, worker_cfg = grctl_files(secured, server.url, ACCOUNT, tmp_path / "hosts")
        env = daemon_env(base_env(), tmp_path / "hosts")
        engine = ChildProcess([sys.executable, "-m", "grctl", "engine", "-c", str(engine_cfg)], env,
                              cwd=ROOT, log_path=tmp_path / "engine.log").start()
        await asyncio.to_thread(engine.wait_for_line, "engine running", 60, True)
        worker = Daemon(worker_cfg, env).start()
        denied = re.escape("the NATS user may not publish to 'grctl_api.worker'")
        logged = rf"^\S+ ERROR .*NATS refused a permission: {denied}"
        refusal = await asyncio.to_thread(worker.wait_for, logged, 60)
        # the supervisor's word for it (the refusal, or the worker's failure that repeats it)
        await asyncio.to_thread(worker.wait_for, rf"generation 1 did not start: .*{denied}", 10)
        retry = await asyncio.to_thread(worker.wait_for, r"^\S+ INFO .* retrying in ", 30)
        # the worker process ended within seconds of the refusal: it did not wait out a request timeout
        gap = (_logged_at(retry.string) - _logged_at(refusal.string)).total_seconds()
        assert gap < settings.REGISTER_TIMEOUT - 1, (refusal.string, retry.string)
        assert not [line for line in worker.lines if "generation 1 ready" in line]
        worker.signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait_exit, 30) is not None
    finally:
        for proc in (worker, engine):
            if proc is not None:
                proc.stop()
        server.cleanup()


def check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grctl.daemon", "-c", str(config), "--check-config",
                           "--check-connection"], env=env, capture_output=True, text=True, timeout=60,
                          cwd=config.parent)


def test_check_config_tests_the_connection_and_the_roles_permissions(tmp_path: Path) -> None:
    secured = Secured(tmp_path, {ACCOUNT: wf_roles.TYPES})
    server = secured_server(secured)
    try:
        engine_cfg, worker_cfg = grctl_files(secured, server.url, ACCOUNT, tmp_path / "hosts")
        env = daemon_env(base_env(), tmp_path)
        worker_role = f"a worker host of {', '.join(wf_roles.TYPES)}"
        for config, role in ((engine_cfg, "the engine"), (worker_cfg, worker_role)):
            ok = check(config, env)
            assert ok.returncode == 0, ok.stderr
            assert f"NATS: connected; the user has what {role}" in ok.stdout
        # a worker host given the reader's user: every missing permission named, nothing started
        misconfigured = tmp_path / "hosts" / "reader-worker.yaml"
        misconfigured.write_text(worker_cfg.read_text().replace("grctl-worker", "grctl-reader")
                                 .replace(f"{ACCOUNT}-worker", f"{ACCOUNT}-reader"))
        refused = check(misconfigured, env)
        assert refused.returncode == 1
        assert "NATS user 'grctl-reader' (account GRCTL) may not publish to \"grctl_api.worker\" (worker)" \
            in refused.stderr
        assert 'may not publish to "grctl_directive.Order.*.*" (worker)' in refused.stderr
        # the grctl command with a user that may not send the command: a clear refusal, at once
        began = time.monotonic()
        start = subprocess.run([sys.executable, "-m", "grctl", "-c", str(misconfigured), "start", "Order",
                                "--id", "by-reader"], env=env, capture_output=True, text=True, timeout=60)
        assert start.returncode == 6, start
        denied = "NATS refused: the NATS user may not publish to 'grctl_api.typed.Order.by-reader'"
        assert denied in start.stderr
        assert time.monotonic() - began < 30
        wrong = tmp_path / "hosts" / "wrong-password.yaml"
        wrong.write_text(worker_cfg.read_text().replace(f"{ACCOUNT}-worker", f"{ACCOUNT}-engine"))
        unauthenticated = check(wrong, env)
        assert unauthenticated.returncode == 1 and "cannot connect to NATS" in unauthenticated.stderr
    finally:
        server.cleanup()


async def test_two_teams_in_separate_accounts_do_not_see_each_others_runs(tmp_path: Path) -> None:
    teams = {"TEAM_A": wf_roles.TYPES, "TEAM_B": wf_roles.TYPES}  # the same type names, on purpose
    secured = Secured(tmp_path, teams)
    server = secured_server(secured)
    started: list[tuple[ChildProcess, Daemon]] = []
    try:
        for team in teams:  # each team: its own grctl_state stream, engine and workers
            started.append(await asyncio.to_thread(start_roles, secured, server.url, team, tmp_path / team))
        a = Client(await secured.connect(server.url, "TEAM_A", "operator"))
        b = Client(await secured.connect(server.url, "TEAM_B", "operator"))
        assert (await a.run_workflow("Order", "same-id", {"n": 1}))["part"] == 2
        assert (await b.run_workflow("Order", "same-id", {"n": 5}))["part"] == 10
        await b.start_workflow("Hold", "only-b")
        assert (await a.describe("same-id")).id != (await b.describe("same-id")).id
        assert "only-b" not in {r.wf_id for r in await a.list_runs()}
        with pytest.raises(WorkflowError, match="not found"):
            await a.describe("only-b")
        kinds = [e.kind for e in await a.get_history("same-id")]
        assert kinds.count("run.completed") == 1
    finally:
        for engine, worker in started:
            stop_roles(engine, worker)
        server.cleanup()


async def test_the_shipped_nkey_users_have_their_roles_permissions(tmp_path: Path) -> None:
    """docs/examples/accounts-nkeys.conf as shipped: each role's public key from the environment, the
    seed on the host; the server then grants each user exactly its role's permissions."""
    seeds = {user: new_keypair(nkeys.PREFIX_BYTE_USER) for user in authconfig.users(
        {authconfig.ACCOUNT: authconfig.EXAMPLE_TYPES})}
    environment = {authconfig.secret_variable(a, r, True): public(kp) for (a, r), kp in seeds.items()}
    (tmp_path / "accounts.conf").write_text((EXAMPLES / "accounts-nkeys.conf").read_text())
    conf = tmp_path / "nats-server.conf"
    conf.write_text("include ./accounts.conf\n")
    server = NatsServerProcess(store_dir=tmp_path / "store", config_file=conf, log_file=tmp_path / "nats.log")
    with server_environment(environment):
        server.start()
    try:
        for role in roles.all_roles(authconfig.EXAMPLE_TYPES):
            seed = tmp_path / f"{role.role}.nk"
            seed.write_text(seed_text(seeds[(authconfig.ACCOUNT, role.role)]))
            connection = await Connection.connect([server.url], nkeys_seed=str(seed))
            try:
                info = await user_info(connection.nc)
            finally:
                await connection.close()
            assert info.account == authconfig.ACCOUNT and missing(info, [role]) == [], role.role
            assert info.publish.allow is not None and set(info.publish.allow) == set(role.publish)
    finally:
        server.cleanup()


async def test_jwt_users_with_the_roles_permissions_get_them(tmp_path: Path) -> None:
    """The decentralised setup: a user JWT per role with the permissions the nsc commands give
    (``--allow-pub``, ``--allow-sub``, ``--allow-pub-response``); the server grants each exactly those."""
    operator = Operator.create()
    conf = tmp_path / "nats-server.conf"
    conf.write_text(operator.server_config())
    server = NatsServerProcess(store_dir=tmp_path / "store", config_file=conf, log_file=tmp_path / "nats.log")
    server.start()
    try:
        for role in roles.all_roles(wf_roles.TYPES):
            creds = tmp_path / f"{role.role}.creds"
            creds.write_text(operator.user_creds(role.role, role.publish, role.subscribe, role.responds))
            connection = await Connection.connect([server.url], user_credentials=str(creds))
            try:
                info = await user_info(connection.nc)
            finally:
                await connection.close()
            assert missing(info, [role]) == [], role.role
            assert info.responds == role.responds
    finally:
        server.cleanup()
