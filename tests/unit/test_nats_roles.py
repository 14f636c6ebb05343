"""The role permissions against the subjects the code uses, read from ``grctl.nats.subjects`` itself (so
a subject added there must be given to a role), and the shipped configuration files against them."""

from __future__ import annotations

import inspect
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grctl.engine.api_scope import refusal, sender, sender_refusal, typed
from grctl.models.command import Command, CommandKind, DescribeCmd, EventCmd, ListCmd, StartCmd, TerminateCmd
from grctl.models.common import RunInfo, RunStatus
from grctl.nats import authconfig, roles, subjects
from grctl.nats.requests import permission_violation
from grctl.nats.roles import allowed, covers, intersection, matches, overlap

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
TYPES = ["Order", "Part"]
ROLES = roles.all_roles(TYPES)


def code_subjects() -> Iterator[tuple[str, str]]:
    """(name, subject) for every subject ``subjects.py`` names: its subject constants, and what each of its
    builders returns for sample names."""
    for name, value in vars(subjects).items():
        if name.startswith("_"):
            continue
        if isinstance(value, str) and value.startswith("grctl_") and value != subjects.STREAM:
            if name.endswith("_QUEUE"):
                continue  # a queue group's name, not a subject
            yield name, f"{value}.sample" if name.endswith("_PREFIX") else value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            yield from ((name, v) for v in value)
        elif inspect.isfunction(value) and value.__module__ == subjects.__name__:
            signature = inspect.signature(value)
            if signature.return_annotation not in ("str", "list[str]"):
                continue  # a check, not a subject
            built = value(*[f"sample{i}" for i in range(len(signature.parameters))])
            yield from ((name, s) for s in ([built] if isinstance(built, str) else built))


def stored(subject: str) -> bool:
    """A subject (or a filter) of the stream's records."""
    return any(overlap(p, subject) for p in subjects.STREAM_SUBJECTS)


def test_the_code_names_subjects_at_all() -> None:
    found = dict(code_subjects())
    assert {"api_child", "outcome", "worker_cmd", "history", "STREAM_SUBJECTS"} <= set(found)


def not_given(name: str, subject: str, given: list[roles.Permissions]) -> list[str]:
    """What of ``subject`` (a subject of the code, or a pattern or filter of subjects: NATS wildcards
    count as NATS reads them) no role of ``given`` may do that one must."""
    def who(permissions: Callable[[roles.Permissions], list[str]], part: str) -> list[str]:
        return [r.role for r in given if any(covers(p, part) for p in permissions(r))]

    if "consumer" in name.lower():  # a durable consumer's name: someone must pull from it
        pull = f"$JS.API.CONSUMER.MSG.NEXT.{subjects.STREAM}.{subject}"
        return [] if who(lambda r: r.publish, pull) else [f"nobody may pull from {subject}"]
    if stored(subject):  # records of the stream: the engine writes every one (and every role reads it)
        parts = [i for p in subjects.STREAM_SUBJECTS if (i := intersection(subject, p)) is not None]
        return [f"the engine cannot write {part}" for part in parts if "engine" not in who(
            lambda r: r.publish, part)]
    return [f"no role may {verb} {subject}" for verb, permissions in (
        ("publish to", lambda r: r.publish), ("subscribe to", lambda r: r.subscribe))
        if not who(permissions, subject)]


@pytest.mark.parametrize(("name", "subject"), list(code_subjects()))
def test_every_subject_of_the_code_is_given_to_a_role(name: str, subject: str) -> None:
    assert not_given(name, subject, ROLES) == [], name


def test_a_wildcard_subject_is_checked_as_nats_reads_it() -> None:
    """A filter of the code (``grctl_run.{wf_id}.{run_id}.*``: a finished run's input, output and error,
    purged together) holds only what the engine may write; take one of those away and it says which."""
    records = subjects.run_records("T", "w", "r")[1]
    assert records == "grctl_run.w.r.*" and not_given("run_records", records, ROLES) == []
    engine = roles.engine()
    short = roles.Permissions("engine", [p for p in engine.publish if p != "grctl_run.*.*.output"],
                              engine.subscribe)
    others = [r for r in ROLES if r.role != "engine"]
    assert not_given("run_records", records, [short, *others]) == \
        ["the engine cannot write grctl_run.w.r.output"]
    # a pattern that a role's permission covers, not merely matches token for token
    assert not_given("API_ALL", subjects.API_ALL, ROLES) == []
    narrow = [roles.Permissions(r.role, r.publish, [p for p in r.subscribe if p != subjects.API_ALL])
              for r in ROLES]
    assert not_given("API_ALL", subjects.API_ALL, narrow) == ["no role may subscribe to grctl_api.>"]
    with_star = [roles.Permissions(r.role, r.publish, [*r.subscribe, "grctl_api.*"]) for r in narrow]
    assert not_given("API_ALL", subjects.API_ALL, with_star) == ["no role may subscribe to grctl_api.>"]


def test_nats_wildcards_cover_and_intersect() -> None:
    assert covers("a.>", "a.*.c") and covers("a.*", "a.*") and covers("a.>", "a.>") and covers("a.b", "a.b")
    assert not covers("a.*", "a.>") and not covers("a.b", "a.*") and not covers("a.>", "a")
    assert not covers("a.*.c", "a.*.*") and covers(">", "x.y")
    assert intersection("grctl_run.w.r.*", "grctl_run.*.*.input") == "grctl_run.w.r.input"
    assert intersection("grctl_run.w.r.*", "grctl_run.*.*.*.info") is None
    assert intersection("a.>", "a.*.c") == "a.*.c" and intersection("a.*.c", "a.>") == "a.*.c"
    assert intersection("a.b", "a.c") is None and intersection("a.>", "a") is None


def test_a_worker_gets_its_own_types_only() -> None:
    worker = roles.worker(["Order"])
    assert allowed(worker.publish, subjects.directive("Order", "o-1", "r"))
    assert not allowed(worker.publish, subjects.directive("Secret", "o-1", "r"))
    next_of = "$JS.API.CONSUMER.MSG.NEXT.grctl_state.{}".format
    assert allowed(worker.publish, next_of(subjects.worker_consumer("Order")))
    assert not allowed(worker.publish, next_of(subjects.worker_consumer("X")))
    for forbidden in (subjects.api_workflow("o-1"), subjects.API_ALL, "$JS.API.STREAM.DELETE.grctl_state",
                      "$JS.API.STREAM.PURGE.grctl_state", subjects.run_state("o-1", "r")):
        assert not allowed(worker.publish, forbidden), forbidden
    with pytest.raises(ValueError, match="workflow type"):
        roles.worker(["bad.type"])


def test_only_the_engine_manages_the_stream_and_nobody_deletes_it() -> None:
    for role in ROLES:
        assert not allowed(role.publish, "$JS.API.STREAM.DELETE.grctl_state")
        manages = allowed(role.publish, "$JS.API.STREAM.UPDATE.grctl_state")
        assert manages == (role.role == "engine")
    reader = roles.reader()
    assert not allowed(reader.publish, subjects.api_workflow("x"))
    assert allowed(reader.publish, subjects.api_describe("x"))


def test_wildcards_follow_nats() -> None:
    assert matches("a.*.c", "a.b.c") and not matches("a.*.c", "a.b.d") and not matches("a.*", "a.b.c")
    assert matches("a.>", "a.b.c") and not matches("a.>", "a")


@pytest.mark.parametrize(("name", "nkeys"), [("accounts.conf", False), ("accounts-nkeys.conf", True)])
def test_the_shipped_accounts_are_what_the_code_makes(name: str, nkeys: bool) -> None:
    shipped = (EXAMPLES / name).read_text()
    made = authconfig.accounts_conf({authconfig.ACCOUNT: authconfig.EXAMPLE_TYPES}, nkeys=nkeys)
    assert shipped == made, f"regenerate: python -m grctl.nats.authconfig{' --nkeys' if nkeys else ''} " \
                            f"> docs/examples/{name}"


def test_the_shipped_nsc_commands_are_what_the_code_makes() -> None:
    shipped = (EXAMPLES / "nsc-setup.sh").read_text()
    assert shipped == authconfig.nsc_script({authconfig.ACCOUNT: authconfig.EXAMPLE_TYPES})


# ``nsc`` as far as the script needs it: it logs its arguments and prints what the script keeps.
FAKE_NSC = """#!/bin/sh
echo "$*" >> "$NSC_LOG"
case "$1 $2" in
  "generate config") printf 'operator: OP\\nresolver {\\n    type: full\\n    %s\\n}\\n' "$NSC_DIR";;
  "generate creds") echo "creds of $6";;
esac
"""


def _run_nsc_setup(tmp_path: Path, script: str, dir_line: str = "dir: './jwt'") -> tuple[int, str]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    nsc = tmp_path / "bin" / "nsc"
    nsc.write_text(FAKE_NSC)
    nsc.chmod(0o755)
    (tmp_path / "nsc-setup.sh").write_text(script)
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "NSC_LOG": str(tmp_path / "nsc.log"),
           "NSC_DIR": dir_line}
    done = subprocess.run(["sh", "nsc-setup.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=30)
    return done.returncode, (tmp_path / "nsc.log").read_text()


def test_the_nsc_setup_makes_what_the_guide_then_uses(tmp_path: Path) -> None:
    """The shipped script (run with a stand-in for ``nsc``): the account server ``nsc push`` needs, a
    ``.creds`` file per role and for the system user, and a resolver.conf whose JWT directory is one
    the node's unit may write (nsc's own, ./jwt, would be under the read-only /)."""
    code, log = _run_nsc_setup(tmp_path, (EXAMPLES / "nsc-setup.sh").read_text())
    assert code == 0
    assert "edit operator --account-jwt-server-url tls://nats1.internal:4222" in log.splitlines()
    made = {p.name for p in tmp_path.glob("*.creds")}
    assert made == {"sys.creds"} | {f"grctl-{r.role}.creds" for r in roles.all_roles(["Greeting"])}
    resolver = (tmp_path / "resolver.conf").read_text()
    assert f"    dir: '{authconfig.RESOLVER_DIR}'\n" in resolver and "./jwt" not in resolver
    assert "StateDirectory=nats" in (EXAMPLES / "nats-server.service").read_text()
    assert authconfig.RESOLVER_DIR.startswith("/var/lib/nats/")
    assert "\n# include ./resolver.conf\n" in (EXAMPLES / "nats-node.conf").read_text()
    # an nsc whose configuration has no directory to set: the script stops instead of shipping it
    other = tmp_path / "other"
    other.mkdir()
    assert _run_nsc_setup(other, (EXAMPLES / "nsc-setup.sh").read_text(), "type: full")[0] != 0


def test_the_nsc_push_url_is_a_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert authconfig.main(["--nsc", "--worker-types", "Orders", "--push-url", "nats://10.0.0.7:4222"]) == 0
    script = capsys.readouterr().out
    assert "nsc edit operator --account-jwt-server-url nats://10.0.0.7:4222\n" in script
    assert "--push-url nats://10.0.0.7:4222`" in script.splitlines()[1]


def _cmd(kind: CommandKind, msg: object) -> Command:
    return Command(id="c1", kind=kind, timestamp=datetime.now(UTC), msg=msg)


# A worker's subject names the sending run: a run "p-run" of the Order workflow "p".
FROM_P = subjects.api_child("Order", "p", "p-run")


def _child(parent: tuple[str, str, str] | None, wf_type: str = "Part") -> Command:
    """A start of a ``wf_type`` run whose parent is (type, workflow id, run id)."""
    p_type, p_id, p_run = parent or (None, None, None)
    ri = RunInfo(id="r", wf_id="kid", wf_type=wf_type, created_at=datetime.now(UTC), parent_wf_type=p_type,
                 parent_wf_id=p_id, parent_run_id=p_run)
    return _cmd(CommandKind.run_start, StartCmd(run_info=ri))


def _running(wf_type: str, wf_id: str, run_id: str, parent: str | None = None,
             status: RunStatus = RunStatus.running) -> RunInfo:
    return RunInfo(id=run_id, wf_id=wf_id, wf_type=wf_type, status=status, created_at=datetime.now(UTC),
                   parent_wf_id=parent, parent_wf_type="Order" if parent else None,
                   parent_run_id="p-run" if parent else None)


def test_the_engine_takes_only_the_kinds_a_subject_stands_for() -> None:
    assert refusal(FROM_P, _child(("Order", "p", "p-run"))) is None
    assert "child workflows only" in str(refusal(FROM_P, _child(None)))
    to_parent = _cmd(CommandKind.run_event, EventCmd(wf_id="p", event_name="e"))
    assert refusal(subjects.api_child("Part", "kid", "r"), to_parent) is None
    kill = _cmd(CommandKind.run_terminate, TerminateCmd(wf_id="kid"))
    for subject in (FROM_P, subjects.api_describe("kid"), subjects.API_WORKER,
                    subjects.API_RUNS):
        assert "run.terminate is not accepted on" in str(refusal(subject, kill))
    assert refusal(subjects.api_workflow("kid"), kill) is None  # the public protocol's subject takes all
    assert refusal(subjects.api_describe("kid"), _cmd(CommandKind.run_describe, DescribeCmd(wf_id="kid"))) \
        is None
    assert refusal(subjects.API_RUNS, _cmd(CommandKind.run_list, ListCmd())) is None


def test_a_child_start_names_the_run_the_workers_subject_names_as_its_parent() -> None:
    """A worker's credential may publish on its types' ``grctl_api.child.{type}.*.*``: a start there must
    name the subject's run as its parent, so the parent is one of the worker's types; a subject without
    the sending run (the old ``grctl_api.child.{wf_id}``) is refused outright."""
    forged = _child(("Order", "p", "forged"), wf_type="Secret")
    assert "starts children of run 'p-run' of Order workflow 'p' only, not of run 'forged'" \
        in str(refusal(FROM_P, forged))
    for wf_type, wf_id in (("Billing", "p"), ("Order", "q")):
        why = refusal(FROM_P, _child((wf_type, wf_id, "p-run")))
        assert f"not of run 'p-run' of {wf_type} workflow {wf_id!r}" in str(why)
    for old in (subjects.API_CHILD_PREFIX + ".kid", subjects.API_CHILD_PREFIX + ".Order.p",
                subjects.API_CHILD_PREFIX + ".Order.p.r.extra", subjects.API_CHILD_PREFIX + ".Order..r"):
        assert "does not name the sending run (grctl_api.child.{wf_type}.{wf_id}.{run_id})" \
            in str(refusal(old, _child(("Order", "p", "p-run")))), old
        assert sender(old) is None
    assert sender(FROM_P) == ("Order", "p", "p-run")
    assert sender(subjects.api_typed("Order", "p")) is None
    worker = roles.worker(["Order"])
    assert allowed(worker.publish, FROM_P)
    assert not allowed(worker.publish, subjects.api_child("Secret", "p", "p-run"))


def test_a_workers_request_needs_a_live_sending_run_and_goes_to_its_parent_only() -> None:
    run = ("Order", "p", "p-run")
    start = _child(run, wf_type="Secret")
    assert sender_refusal(run, _running(*run), start) is None  # a child of any type: the code decides
    assert sender_refusal(run, None, start) == \
        "the parent run, run 'p-run' of Order workflow 'p', does not exist"
    ended = _running(*run, status=RunStatus.completed)
    assert sender_refusal(run, ended, start) == \
        "the parent run, run 'p-run' of Order workflow 'p', has ended (completed)"

    kid = ("Part", "kid", "r")
    to_parent = _cmd(CommandKind.run_event, EventCmd(wf_id="p", event_name="e"))
    assert sender_refusal(kid, _running(*kid, parent="p"), to_parent) is None
    elsewhere = _cmd(CommandKind.run_event, EventCmd(wf_id="hold-1", event_name="e"))
    assert sender_refusal(kid, _running(*kid, parent="p"), elsewhere) == \
        "an event from run 'r' of Part workflow 'kid' goes to its parent workflow only ('p'), not to 'hold-1'"
    assert "goes to its parent workflow only (it has none), not to 'p'" \
        in str(sender_refusal(run, _running(*run), to_parent))
    assert sender_refusal(kid, None, to_parent) == \
        "the sending run, run 'r' of Part workflow 'kid', does not exist"
    assert "has ended (terminated)" in str(sender_refusal(
        kid, _running(*kid, parent="p", status=RunStatus.terminated), to_parent))


def test_an_applications_subject_names_the_workflow_type() -> None:
    order = RunInfo(id="r", wf_id="o-1", wf_type="Order", created_at=datetime.now(UTC))
    start = _cmd(CommandKind.run_start, StartCmd(run_info=order))
    assert refusal(subjects.api_typed("Order", "o-1"), start) is None
    assert "starts workflows of type 'Part' only" in str(refusal(subjects.api_typed("Part", "o-1"), start))
    assert "about workflow 'o-2' only" in str(refusal(subjects.api_typed("Order", "o-2"), start))
    kill = _cmd(CommandKind.run_terminate, TerminateCmd(wf_id="o-1"))
    assert "run.terminate is not accepted on" in str(refusal(subjects.api_typed("Order", "o-1"), kill))
    assert typed(subjects.api_typed("Order", "o-1")) == ("Order", "o-1")
    assert typed(subjects.api_workflow("o-1")) is None
    app = roles.app(["Order"])
    assert allowed(app.publish, subjects.api_typed("Order", "o-1"))
    assert not allowed(app.publish, subjects.api_typed("Part", "o-1"))
    assert not allowed(app.publish, subjects.api_workflow("o-1"))


def test_a_permission_violation_names_its_subject() -> None:
    denial = permission_violation(Exception('nats: permissions violation for publish to "grctl_meta.layout"'))
    assert denial is not None and denial.subject == "grctl_meta.layout" and denial.operation == "publish"
    assert "may not publish to 'grctl_meta.layout'" in str(denial)
    assert permission_violation(Exception("nats: stale connection")) is None


def test_the_engine_may_answer_any_requester_without_allow_responses() -> None:
    """The web console listens to worker registrations on the engine's connection beside the API's
    queue group; a cluster's server then refused the engine's reply under allow_responses alone."""
    from nats.aio.client import DEFAULT_INBOX_PREFIX

    reply = f"{DEFAULT_INBOX_PREFIX.decode()}.{'a' * 22}.{'b' * 8}"  # a requester's reply subject
    assert allowed(roles.engine().publish, reply)
    assert not any(allowed(role.publish, reply) for role in roles.all_roles(["Greeting"])
                   if role.role != "engine")


def test_every_generated_password_starts_with_a_letter() -> None:
    """nats-server takes a variable's value that starts with a digit or "-" for a number."""
    for _ in range(50):
        made = authconfig.secrets_env({authconfig.ACCOUNT: authconfig.EXAMPLE_TYPES})
        values = [line.split("=", 1)[1] for line in made.splitlines() if not line.startswith("#")]
        assert values and all(v[0].isalpha() for v in values), values
