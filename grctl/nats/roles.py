"""The NATS permissions of each role of a grctl deployment, built from the subjects in ``subjects.py``.

What each program publishes and subscribes to, and nothing more:

- ``engine``: writes every record of the ``grctl_state`` stream, manages the stream and its consumers
  (placement included: consumer leader step-down), serves the API (replying to any ``_INBOX.``),
  announces outcomes and asks workers to stop a run's step. It may not delete the stream.
- ``worker``: for its own workflow types only: pulls and acknowledges their tasks, writes their
  directives, starts children of their runs and sends events to those runs' parents
  (``grctl_api.child.{wf_type}.*.*``: the subject names the sending run, which the engine checks);
  writes step history, step claims and store values, registers, asks what live runs need of its code
  and lists runs (``grctl_api.runs``). No operator command, no stream or foreign consumer management.
- ``operator``: the CLI of a person who runs the system: every engine API command, reads.
- ``app``: an application that starts runs of its workflow types, signals them, describes and waits
  for them (``grctl_api.typed.{wf_type}.*``, which our client uses); no cancel or terminate. An
  application of the public SDK sends everything to ``grctl_api.workflow.*`` and needs ``operator``.
- ``reader``: describe, history and list; nothing that changes a run.

Every role reads the stream (direct gets): NATS cannot limit a read by the subject inside its request,
so confidentiality between teams needs separate accounts (docs/deployment.md#tenants).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from grctl.nats import subjects

_S = subjects.STREAM
JS_API = "$JS.API"

INBOXES = "_INBOX.>"
# A user's own permissions, as the server has them: what `grctld --check-config --check-connection` asks.
USER_INFO = "$SYS.REQ.USER.INFO"
OUTCOMES = f"{subjects.OUTCOME_PREFIX}.>"
# Every step claim (its last token, a dispatch's sequence, as a wildcard); not the run states beside them.
ANY_CLAIM = subjects.step_claim("*", "*", 0).rsplit(".", 1)[0] + ".*"

# What every role does: learn its own permissions, read the stream's settings (replicated or not) and
# its records (direct gets, and the leader's get).
EVERY_ROLE = [USER_INFO, f"{JS_API}.INFO", f"{JS_API}.STREAM.INFO.{_S}", f"{JS_API}.DIRECT.GET.{_S}",
               f"{JS_API}.DIRECT.GET.{_S}.>", f"{JS_API}.STREAM.MSG.GET.{_S}"]
# An unnamed (ephemeral, in-memory) consumer: following a run's history.
EPHEMERAL_CONSUMER = [f"{JS_API}.CONSUMER.CREATE.{_S}"]

# The stream administration the engine does; never STREAM.DELETE.
MANAGE_STREAM = [f"{JS_API}.STREAM.{op}.{_S}" for op in ("CREATE", "UPDATE", "PURGE")] \
    + [f"{JS_API}.STREAM.MSG.DELETE.{_S}"]
MANAGE_CONSUMERS = [f"{JS_API}.CONSUMER.{op}.{_S}" for op in ("CREATE", "NAMES", "LIST")] \
    + [f"{JS_API}.CONSUMER.{op}.{_S}.>" for op in ("CREATE", "INFO", "DELETE")] \
    + [f"{JS_API}.CONSUMER.{op}.{_S}.*" for op in ("DURABLE.CREATE", "MSG.NEXT", "LEADER.STEPDOWN")] \
    + [f"$JS.ACK.{_S}.>", f"$JS.FC.{_S}.>"]


@dataclass(frozen=True)
class Permissions:
    """One NATS user's permissions: subjects it may publish to and subscribe to (NATS wildcards), and
    whether it may answer requests it received (``allow_responses``)."""

    role: str
    publish: list[str]
    subscribe: list[str]
    responds: bool = False
    comment: str = ""
    types: list[str] = field(default_factory=list)


def engine() -> Permissions:
    return Permissions(
        "engine",
        # INBOXES: the API's replies. allow_responses alone is not enough: the web console listens to
        # worker registrations on the engine's connection (grctl/console/reads.py) beside the API's
        # queue group, and a cluster's server then refused the engine's reply to a registration.
        publish=[*subjects.STREAM_SUBJECTS, OUTCOMES, subjects.worker_cmd(">"), INBOXES,
                 *EVERY_ROLE, *MANAGE_STREAM, *MANAGE_CONSUMERS],
        subscribe=[INBOXES, subjects.API_ALL],
        responds=True,
        comment="the engine: every record of the stream, its consumers, the API",
    )


def _worker_consumer(wf_type: str) -> list[str]:
    name = subjects.worker_consumer(wf_type)
    return [f"{JS_API}.CONSUMER.INFO.{_S}.{name}", f"{JS_API}.CONSUMER.CREATE.{_S}.{name}.>",
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{_S}.{name}", f"{JS_API}.CONSUMER.MSG.NEXT.{_S}.{name}",
            f"$JS.ACK.{_S}.{name}.>"]


def _types(types: Iterable[str], who: str) -> list[str]:
    wanted = list(types)
    if not wanted:
        raise ValueError(f"{who} needs at least one workflow type")
    for wf_type in wanted:
        subjects.check_token("workflow type", wf_type)
    return wanted


def worker(types: Iterable[str]) -> Permissions:
    """A worker host running workflows of ``types`` (and only those)."""
    wanted = _types(types, "a worker host")
    own = [s for t in wanted for s in (subjects.directive(t, "*", "*"), subjects.api_child(t, "*", "*"),
                                       *_worker_consumer(t))]
    return Permissions(
        "worker",
        # API_RUNS: the catalog check before a new worker generation takes over (grctl/daemon/strand.py)
        publish=[subjects.API_WORKER, subjects.API_RUNS, subjects.history("*", "*"),
                 subjects.kv("*", "*", "*"), ANY_CLAIM, *own, *EVERY_ROLE],
        subscribe=[INBOXES, subjects.worker_cmd(">"), OUTCOMES],
        responds=True,
        comment=f"a worker host of {', '.join(wanted)}",
        types=wanted,
    )


def operator() -> Permissions:
    return Permissions("operator", publish=[subjects.API_ALL, *EVERY_ROLE, *EPHEMERAL_CONSUMER],
                       subscribe=[INBOXES, OUTCOMES],
                       comment="the grctl command of an operator: every API command, reads")


def app(types: Iterable[str]) -> Permissions:
    """An application that starts and signals runs of ``types`` (and only those)."""
    wanted = _types(types, "an application")
    own = [subjects.api_typed(t, "*") for t in wanted]
    return Permissions("app", publish=[*own, subjects.api_describe("*"), *EVERY_ROLE, *EPHEMERAL_CONSUMER],
                       subscribe=[INBOXES, OUTCOMES],
                       comment=f"an application: starts, signals and waits for runs of {', '.join(wanted)}",
                       types=wanted)


def reader() -> Permissions:
    return Permissions("reader", publish=[subjects.API_RUNS, subjects.api_describe("*"), *EVERY_ROLE,
                                          *EPHEMERAL_CONSUMER],
                       subscribe=[INBOXES],
                       comment="read-only: describe, history, list")


def all_roles(types: Iterable[str]) -> list[Permissions]:
    """Every role of an account whose workflows are of ``types`` (its worker hosts and applications)."""
    wanted = list(types)
    return [engine(), worker(wanted), operator(), app(wanted), reader()]


def matches(pattern: str, subject: str) -> bool:
    """Whether the NATS subject ``pattern`` (``*`` one token, ``>`` the rest) covers ``subject``."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def overlap(a: str, b: str) -> bool:
    """Whether some subject matches both NATS patterns ``a`` and ``b``."""
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right, strict=False):
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(left) == len(right)


def covers(pattern: str, subject: str) -> bool:
    """Whether the NATS pattern ``pattern`` matches every subject that ``subject`` (itself a pattern, a
    filter, or a plain subject: then this is ``matches``) matches."""
    have, want = pattern.split("."), subject.split(".")
    for i, token in enumerate(have):
        if token == ">":
            return len(want) > i
        if i >= len(want) or want[i] == ">" or (token != "*" and token != want[i]):
            return False
    return len(have) == len(want)


def intersection(a: str, b: str) -> str | None:
    """The NATS pattern of the subjects that both ``a`` and ``b`` match, or None when none does."""
    left, right = a.split("."), b.split(".")
    both: list[str] = []
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else None
        y = right[i] if i < len(right) else None
        if x is None or y is None:
            return None
        if x == ">":
            return ".".join(both + right[i:])
        if y == ">":
            return ".".join(both + left[i:])
        if x != y and "*" not in (x, y):
            return None
        both.append(y if x == "*" else x)
    return ".".join(both)


def allowed(patterns: Iterable[str], subject: str) -> bool:
    return any(matches(p, subject) for p in patterns)
