"""Would this code strand live runs? Before a new generation takes over, its worker asks the engine
(``catalog.check``, ours) which workflow types, steps, events and timeout handlers that live runs still
need its catalog drops (docs/operations.md#deploying-new-code). ``grctld --check-config`` asks the same.
An engine that does not know the command (the public server), or none answering, means "cannot tell":
the deploy goes on, with a warning."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import msgspec
import nats.errors

from grctl import settings
from grctl.models.command import CatalogCheckCmd, CatalogNeed, CommandKind
from grctl.models.errors import WorkflowError
from grctl.nats import api_client, subjects
from grctl.nats.connection import Connection
from grctl.workflow import Workflow

log = logging.getLogger(__name__)

# --check-config asks once, briefly: it must not hang when no NATS or engine is around.
CHECK_CONNECT: dict[str, Any] = {"connect_timeout": settings.CATALOG_CHECK_CONNECT,
                                 "max_reconnect_attempts": 0}
ALLOW_KEY = "reload.allow_missing_handlers"


class StrandingRefused(Exception):
    """The code lacks handlers that live runs need, and the configuration does not allow that."""


async def stranded(connection: Connection, workflows: list[Workflow], dropped: list[str],
                   sender: str, budget: float = settings.CATALOG_CHECK_BUDGET) -> list[CatalogNeed] | None:
    """What live runs need that ``workflows`` (replacing workers that served ``dropped`` types too)
    lack; None when no engine could tell."""
    cmd = CatalogCheckCmd(types=[wf.type_def() for wf in workflows], dropped=dropped)
    try:
        # One request may take a while (a state read per live run): it gets the whole budget.
        reply = await api_client.call(connection, "", CommandKind.catalog_check, cmd, sender, timeout=budget,
                               budget=budget, subject=subjects.API_RUNS)
    except (WorkflowError, TimeoutError, OSError, nats.errors.NoRespondersError) as exc:
        log.warning("cannot check whether this code strands live runs (%s); going on", exc)
        return None
    return msgspec.convert(reply.response.payload or [], list[CatalogNeed])


def describe(needs: list[CatalogNeed]) -> str:
    """One readable line per dropped handler, naming some of the runs that need it."""
    lines = []
    for n in needs:
        what = f"workflow type {n.wf_type!r}" if n.kind == "type" else \
            f"{n.kind} handler {n.handler!r} of {n.wf_type!r}"
        more = f" and {n.count - len(n.runs)} more" if n.count > len(n.runs) else ""
        lines.append(f"{what}, needed by {n.count} live run(s): {', '.join(n.runs)}{more}")
    return "; ".join(lines)


async def _ask_once(options: dict[str, Any], workflows: list[Workflow], dropped: list[str], sender: str,
                    budget: float) -> list[CatalogNeed] | None:
    """``stranded`` on a connection of its own, made briefly (None when NATS cannot be reached)."""
    from grctl.nats.connection import Connection

    try:
        connecting = Connection.connect(**{**options, **CHECK_CONNECT})
        connection = await asyncio.wait_for(connecting, 2 * settings.CATALOG_CHECK_CONNECT)
    except Exception as exc:
        log.warning("no engine asked whether this code strands live runs: cannot connect to NATS (%s)", exc)
        return None
    try:
        return await stranded(connection, workflows, dropped, sender, budget=budget)
    finally:
        await connection.close()


async def check_config_catalog(options: dict[str, Any], workflows: list[Workflow]) -> str:
    """``grctld --check-config``: what these workflows would strand, when an engine can be reached
    ("" when nothing, or when none can be asked: said on stderr by the caller's log)."""
    needs = await _ask_once(options, workflows, [], f"grctld-check-{os.getpid()}",
                            settings.CATALOG_CHECK_FIRST_START)
    return describe(needs) if needs else ""


async def check_before_dropping(options: dict[str, Any], dropped: list[str], allowed: bool) -> None:
    """A reload to a file without workflows (no new worker to ask): raise ``StrandingRefused`` when
    live runs need the ``dropped`` types the running generation serves, unless ``allowed``."""
    needs = await _ask_once(options, [], dropped, f"grctld-{os.getpid()}", settings.CATALOG_CHECK_BUDGET)
    if needs:
        _refuse_or_warn(describe(needs), first_start=False, allowed=allowed)


def _refuse_or_warn(text: str, first_start: bool, allowed: bool) -> None:
    if not first_start and not allowed:
        raise StrandingRefused(f"reload refused: the new code lacks {text}. Deploy code that keeps these "
                               f"handlers (or end those runs), or set {ALLOW_KEY}: true")
    why = "first start" if first_start else f"{ALLOW_KEY} is true"
    log.warning("this code lacks handlers that live runs need (%s; starting anyway): %s. Those runs "
                "stay stuck until code that has them is deployed", why, text)


async def check_before_serving(connection: Connection, workflows: list[Workflow], dropped: list[str] | None,
                               allowed: bool, sender: str) -> None:
    """Raise ``StrandingRefused`` when this code would strand live runs on a reload (``dropped`` is the
    list of types the generation it replaces served) and ``allowed`` is false; otherwise only log."""
    # At the first start only a warning can come of it: it must not hold the start up for long.
    needs = await stranded(connection, workflows, dropped or [], sender,
                           budget=settings.CATALOG_CHECK_BUDGET if dropped is not None
                           else settings.CATALOG_CHECK_FIRST_START)
    if needs:
        _refuse_or_warn(describe(needs), first_start=dropped is None, allowed=allowed)
