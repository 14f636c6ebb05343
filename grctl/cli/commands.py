"""The ``grctl`` client subcommands: start, run, history, send, cancel, terminate (``list`` is in
``grctl.cli.list_command``, ``describe`` and ``retry`` in ``grctl.cli.describe_retry``, registered beside
these).

Each one checks its arguments first (so bad input fails without a server), connects, does one thing
through ``grctl.client.client.Client``, and maps what went wrong to a distinct exit status
(``EXIT_STATUS_HELP``, printed by ``grctl --help``). Results and messages go to stdout, errors to
stderr as ``grctl: <message>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats.errors
from ulid import ULID

from grctl import settings
from grctl.cli import format as fmt
from grctl.cli.start_time import add_when_arguments, start_run_of
from grctl.client.client import Client
from grctl.client.refusal import explain
from grctl.lifecycle import until_stopped
from grctl.models.errors import (
    WorkflowCancelledError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowTerminatedError,
)
from grctl.nats.connection import Connection
from grctl.nats.history import last_event
from grctl.nats.requests import PermissionDeniedError
from grctl.nats.subjects import check_token
from grctl.workflow.handle import WorkflowHandle

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_RUN_CANCELLED = 3
EXIT_BAD_INPUT = 4
EXIT_NOT_FOUND = 5
EXIT_REFUSED = 6
EXIT_UNREACHABLE = 7
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = """\
exit status:
  0  success
  1  the run failed or timed out (run, start/cancel/terminate --wait)
  2  bad command line
  3  the run was cancelled or terminated (run, start/cancel/terminate --wait)
  4  bad input: --input/--payload is not JSON, an @file cannot be read, or a name
     contains '.', '*', '>' or white space or is longer than 255 bytes
  5  the workflow id has no run
  6  the engine refused the command: the id already has an active run, the type is
     not registered, or the run has already finished; or the NATS user may not send it
  7  the NATS server cannot be reached, or no engine answers
"""

CONNECT_OPTIONS: dict[str, Any] = {"connect_timeout": settings.CLI_CONNECT_TIMEOUT,
                                   "max_reconnect_attempts": settings.CLI_RECONNECT_ATTEMPTS,
                                   "reconnect_time_wait": settings.CLI_RECONNECT_WAIT}

Command = Callable[[Client, argparse.Namespace], Awaitable[int]]


class CliError(Exception):
    """Ends the command with ``status`` after printing ``message`` on stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- arguments -----------------------------------------------------------------------------------


def json_argument(option: str, text: str | None) -> Any:
    """The value of a JSON option: inline JSON, ``@path`` (a file) or ``@-`` (stdin); None if absent."""
    if text is None:
        return None
    source = ""
    if text.startswith("@"):
        path = text[1:]
        source = " (stdin)" if path == "-" else f" (file {path})"
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CliError(EXIT_BAD_INPUT, f"{option}: cannot read {path}: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(EXIT_BAD_INPUT, f"{option} is not valid JSON{source}: {exc}") from None


def check_name(what: str, value: str) -> None:
    try:
        check_token(what, value)
    except ValueError as exc:
        raise CliError(EXIT_BAD_INPUT, f"invalid {exc}") from None


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


# --- running a command ---------------------------------------------------------------------------


def run(args: argparse.Namespace, servers: list[str], command: Command,
        auth: dict[str, Any] | None = None) -> int:
    """Run ``command`` with a connected client (``auth``: credentials and TLS options); the exit status."""
    level = "DEBUG" if args.verbose else (getattr(args, "global_log_level", None) or "ERROR").upper()
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_connected(args, servers, command, auth or {}))
    except CliError as exc:
        print(f"grctl: {exc.message}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def connect(servers: list[str], auth: dict[str, Any] | None = None) -> Connection:
    errors: list[BaseException] = []
    tls_failed = asyncio.Event()  # nats-py retries a failed TLS handshake forever: give up at once

    async def remember(exc: Exception) -> None:
        errors.append(exc)
        if isinstance(exc, ssl.SSLError):
            tls_failed.set()

    where = ", ".join(servers)
    connecting = asyncio.ensure_future(Connection.connect(servers, name="grctl-cli", error_cb=remember,
                                                          **{**CONNECT_OPTIONS, **(auth or {})}))
    if not await until_stopped(connecting, tls_failed):
        connecting.cancel()
        raise CliError(EXIT_UNREACHABLE, f"cannot connect to NATS at {where}: TLS failed ({errors[-1]}); "
                                         "check the CA (tls.ca_file) and the server name")
    try:
        return connecting.result()
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        cause = errors[-1] if errors else exc
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        raise CliError(EXIT_UNREACHABLE, f"cannot connect to NATS at {where}: {reason}") from None


async def _connected(args: argparse.Namespace, servers: list[str], command: Command,
                     auth: dict[str, Any]) -> int:
    connection = await connect(servers, auth)
    try:
        try:
            return await command(Client(connection, retry_for=settings.CLI_RETRY_FOR), args)
        except CliError:
            raise
        except WorkflowError as exc:
            raise _refusal(exc, args) from None
        except PermissionDeniedError as exc:
            raise CliError(EXIT_REFUSED, f"NATS refused: {exc}") from None
        except nats.errors.NoRespondersError:
            # Nothing subscribes to the API, so the command was not delivered.
            raise CliError(EXIT_UNREACHABLE, f"no engine answers on {', '.join(servers)} "
                                             "(is `grctl engine` running?)") from None
        except nats.errors.TimeoutError:
            raise CliError(EXIT_UNREACHABLE, "the engine did not answer in time") from None
        except (nats.errors.ConnectionClosedError, nats.errors.NoServersError) as exc:
            raise CliError(EXIT_UNREACHABLE, f"lost the connection to NATS: {exc}") from None
    finally:
        await connection.close()


def _refusal(exc: WorkflowError, args: argparse.Namespace) -> CliError:
    """The exit status and message for an error reply of the engine API."""
    status = EXIT_NOT_FOUND if isinstance(exc, WorkflowNotFoundError) else EXIT_REFUSED
    return CliError(status, explain(exc, getattr(args, "id", ""), getattr(args, "type", "")))


async def _outcome(handle: WorkflowHandle) -> int:
    """Wait for the run to end; print its result (stdout) or why it did not complete (stderr)."""
    what = f"run {handle.run_id} of workflow {handle.wf_id!r}"
    try:
        result = await handle.result()
    except WorkflowTerminatedError:
        raise CliError(EXIT_RUN_CANCELLED, f"{what} was terminated") from None
    except WorkflowCancelledError:
        raise CliError(EXIT_RUN_CANCELLED, f"{what} was cancelled") from None
    except WorkflowError as exc:
        raise CliError(EXIT_RUN_FAILED, f"{what} failed: {exc}") from None
    except TimeoutError as exc:
        raise CliError(EXIT_RUN_FAILED, f"{what} timed out: {exc}") from None
    print(fmt.result_text(result), flush=True)
    return EXIT_OK


# --- the commands --------------------------------------------------------------------------------


async def cmd_start(client: Client, args: argparse.Namespace) -> int:
    handle = await start_run_of(client, args)
    try:
        if args.json:
            print(fmt.to_json({"wf_id": handle.wf_id, "wf_type": args.type, "run_id": handle.run_id}))
        else:
            print(f"Started workflow {handle.wf_id} ({args.type}), run {handle.run_id}")
        sys.stdout.flush()
        return await _outcome(handle) if args.wait else EXIT_OK
    finally:
        await handle.close()


async def cmd_run(client: Client, args: argparse.Namespace) -> int:
    handle = await start_run_of(client, args)
    if args.generated_id:  # stdout is for the result
        print(f"Started workflow {handle.wf_id} ({args.type}), run {handle.run_id}", file=sys.stderr)
    try:
        return await _outcome(handle)
    finally:
        await handle.close()


async def cmd_history(client: Client, args: argparse.Namespace) -> int:
    run_id = args.run_id or (await client.describe(args.id)).id
    show = fmt.event_json if args.json else fmt.table_row
    if args.follow and args.run_id and await last_event(client.connection.nc, args.id, run_id) is None:
        raise CliError(EXIT_NOT_FOUND, f"workflow {args.id!r} has no run {args.run_id!r}")
    if args.follow:
        if not args.json:
            print(fmt.TABLE_HEADER, flush=True)
        async for event in client.follow_history(args.id, run_id):
            print(show(event), flush=True)
        return EXIT_OK
    events = await client.get_history(args.id, run_id)
    if not events and args.run_id:
        raise CliError(EXIT_NOT_FOUND, f"workflow {args.id!r} has no run {args.run_id!r}")
    if not args.json:
        print(fmt.TABLE_HEADER)
    for event in events:
        print(show(event))
    if not args.json and (retried := (await client.describe_run(args.id, run_id)).info.retried_as):
        print(f"(retried as run {retried}: grctl history {args.id})")
    return EXIT_OK


async def _latest(client: Client, wf_id: str) -> WorkflowHandle:
    """A handle on the latest run, without watching it (only its commands are used)."""
    return WorkflowHandle(await client.describe(wf_id), client.connection, client.id)


async def cmd_send(client: Client, args: argparse.Namespace) -> int:
    handle = await _latest(client, args.id)
    await handle.send(args.event, args.payload_value)
    print(f"Sent event {args.event!r} to workflow {args.id} (run {handle.run_id})")
    return EXIT_OK


async def _ending(client: Client, args: argparse.Namespace, terminate: bool) -> int:
    """Cancel or terminate the latest run; with ``--wait``, then wait for it to end (watching it from
    before the command, so its end cannot be missed) and exit with its status."""
    handle = await client.get_workflow_handle(args.id) if args.wait else await _latest(client, args.id)
    try:
        if terminate:
            await handle.terminate(args.reason)
            print(f"Terminated workflow {args.id} (run {handle.run_id})", flush=True)
        else:
            await handle.cancel(args.reason)
            print(f"Cancel requested for workflow {args.id} (run {handle.run_id}); "
                  "a running step finishes first", flush=True)
        return await _outcome(handle) if args.wait else EXIT_OK
    finally:
        await handle.close()


async def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    return await _ending(client, args, terminate=False)


async def cmd_terminate(client: Client, args: argparse.Namespace) -> int:
    return await _ending(client, args, terminate=True)


# --- parsers -------------------------------------------------------------------------------------


RUN_TIMEOUT_HELP = "run-level timeout: the engine ends the run as timed out after SECONDS"
INPUT_HELP = "the workflow input: JSON, @FILE (a JSON file) or @- (stdin); default none"


Prepare = Callable[[argparse.Namespace], None]


def add_command(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser], name: str,
         help: str, command: Command, prepare: Prepare) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help, parents=parents,
                                                epilog=EXIT_STATUS_HELP,
                                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(client_command=command, prepare=prepare)
    return p


def prepare_start(args: argparse.Namespace) -> None:
    check_name("workflow type", args.type)
    args.generated_id = not args.id
    if not args.id:
        args.id = str(ULID())
    check_name("workflow id", args.id)
    args.input_value = json_argument("--input", args.input)


def prepare_id(args: argparse.Namespace) -> None:
    check_name("workflow id", args.id)
    if getattr(args, "run_id", None):
        check_name("run id", args.run_id)


def prepare_send(args: argparse.Namespace) -> None:
    prepare_id(args)
    check_name("event name", args.event)
    args.payload_value = json_argument("--payload", args.payload)


def add_client_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    for name, help, command in (("start", "start a workflow run", cmd_start),
                                ("run", "start a workflow run, wait for it and print its result", cmd_run)):
        p = add_command(sub, parents, name, help, command, prepare_start)
        p.add_argument("type", metavar="TYPE", help="the workflow type")
        p.add_argument("--id", metavar="ID", help="the workflow id (default: a new unique id, printed)")
        p.add_argument("--input", metavar="JSON|@FILE", help=INPUT_HELP)
        p.add_argument("--timeout", type=positive_seconds, metavar="SECONDS", help=RUN_TIMEOUT_HELP)
        add_when_arguments(p)
        if name == "start":
            p.add_argument("--wait", action="store_true", help="then wait for the run and print its result")
            p.add_argument("--json", action="store_true", help="print the started run as JSON")

    p = add_command(sub, parents, "history", "show the history of a run", cmd_history, prepare_id)
    add_run_arguments(p, "one JSON object per event and line (JSON Lines)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new events; end when the run ends")

    p = add_command(sub, parents, "send", "send an event to the latest run of a workflow", cmd_send,
                    prepare_send)
    p.add_argument("id", metavar="ID", help="the workflow id")
    p.add_argument("event", metavar="EVENT", help="the event name")
    p.add_argument("--payload", metavar="JSON|@FILE", help="the event payload (JSON, @FILE or @-)")

    for name, help, command in (
            ("cancel", "cancel the latest run of a workflow (after its running step)", cmd_cancel),
            ("terminate", "end the latest run of a workflow now, stopping its step", cmd_terminate)):
        p = add_command(sub, parents, name, help, command, prepare_id)
        p.add_argument("id", metavar="ID", help="the workflow id")
        add_ending_arguments(p)


def add_run_arguments(p: argparse.ArgumentParser, json_help: str) -> None:
    p.add_argument("id", metavar="ID", help="the workflow id")
    p.add_argument("--run-id", metavar="RUN_ID", help="a run of the workflow (default: the latest)")
    p.add_argument("--json", action="store_true", help=json_help)


def add_ending_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", help="why (recorded in the history)")
    p.add_argument("--wait", action="store_true",
                   help="then wait until the run has ended; exit with its status (0, 1 or 3)")


def run_client_command(args: argparse.Namespace, servers: list[str],
                       auth: dict[str, Any] | None = None) -> int:
    try:
        args.prepare(args)
    except CliError as exc:
        print(f"grctl: {exc.message}", file=sys.stderr)
        return exc.status
    return run(args, servers, args.client_command, auth)
