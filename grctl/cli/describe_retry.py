"""``grctl describe`` (a run as an operator looks at it: where it is, whether it is stuck and why, its
result or error) and ``grctl retry`` (resume ended runs on the current code, one by id or many by
filter) — the commands of a deploy's runbook (docs/operations.md#deploying-new-code)."""

from __future__ import annotations

import argparse

from grctl.cli import format as fmt
from grctl.cli.commands import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    add_command,
    add_run_arguments,
    check_name,
    prepare_id,
)
from grctl.cli.list_command import add_list_arguments, prepare_list
from grctl.client.client import RETRYABLE_STATUSES, Client
from grctl.models.errors import WorkflowError, WorkflowNotFoundError

DESCRIBE_HELP = ("show the latest run of a workflow: where it is, whether it is stuck and why, its result or "
                 "error (-v: with the traceback)")
RETRY_HELP = ("resume an ended run (failed, timed out or terminated) on the current code, as a new run of "
              "its workflow id, at the step it ended in; or, with filters and no ID, every such run that "
              "matches")


async def cmd_describe(client: Client, args: argparse.Namespace) -> int:
    details = await client.describe_run(args.id, args.run_id)
    print(fmt.details_json(details) if args.json else "\n".join(fmt.details_lines(details, args.verbose)))
    return EXIT_OK


async def cmd_retry(client: Client, args: argparse.Namespace) -> int:
    if args.id is None:
        return await _retry_many(client, args)
    try:
        new = await client.retry_run(args.id, args.run_id, args.reason or "")
    except WorkflowNotFoundError:
        raise
    except WorkflowError as exc:
        raise CliError(EXIT_REFUSED, f"not retried: {exc}") from None
    if args.json:
        print(fmt.run_info_json(new))
    else:
        print(f"Retried workflow {new.wf_id}: run {new.retry_of} resumes as run {new.id}")
    return EXIT_OK


async def _retry_many(client: Client, args: argparse.Namespace) -> int:
    statuses = args.statuses or sorted(RETRYABLE_STATUSES)
    if args.dry_run:
        runs = [r for r in await client.list_runs(statuses, args.type, args.since, args.limit)
                if not r.retried_as]
        for run in runs:
            print(f"would retry {run.wf_id} (run {run.id}, {run.status})")
        print(f"{len(runs)} runs would be retried")
        return EXIT_OK
    outcomes = await client.retry_runs(statuses, args.type, args.since, args.limit)
    if args.json:
        print(fmt.to_json([{"wf_id": o.run.wf_id, "run_id": o.run.id,
                            "retried_as": o.retried_as.id if o.retried_as else None,
                            "error": o.error or None} for o in outcomes], indent=2))
    for o in outcomes if not args.json else []:
        if o.retried_as is not None:
            print(f"retried {o.run.wf_id}: run {o.run.id} resumes as run {o.retried_as.id}")
        else:
            print(f"not retried {o.run.wf_id} (run {o.run.id}): {o.error}")
    refused = sum(1 for o in outcomes if o.retried_as is None)
    if not args.json:
        print(f"{len(outcomes) - refused} runs retried, {refused} refused")
    return EXIT_REFUSED if refused else EXIT_OK


def prepare_retry(args: argparse.Namespace) -> None:
    prepare_list(args)
    if args.id is not None:
        prepare_id(args)
        if args.statuses or args.type or args.since:
            raise CliError(EXIT_USAGE, "give a workflow ID or filters (--status, --type, --since), not both")
        return
    if args.run_id:
        raise CliError(EXIT_USAGE, "--run-id needs a workflow ID")
    if not (args.statuses or args.type or args.since):
        raise CliError(EXIT_USAGE, "give a workflow ID, or at least one filter (--status, --type, --since)")
    if args.type:
        check_name("workflow type", args.type)
    unknown = set(args.statuses) - set(RETRYABLE_STATUSES)
    if unknown:
        raise CliError(EXIT_USAGE, f"only failed, timed_out and terminated runs can be retried, not "
                          f"{', '.join(sorted(unknown))}")


def add_runs_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = add_command(sub, parents, "describe", DESCRIBE_HELP, cmd_describe, prepare_id)
    add_run_arguments(p, "print the run info, step, result and error as JSON")

    p = add_command(sub, parents, "retry", RETRY_HELP, cmd_retry, prepare_retry)
    p.add_argument("id", metavar="ID", nargs="?", help="the workflow id (its latest run is retried)")
    p.add_argument("--run-id", metavar="RUN_ID", help="the run to retry (it must be the latest)")
    p.add_argument("--reason", help="why (the engine logs it with the retry)")
    p.add_argument("--dry-run", action="store_true", help="with filters: only print what would be retried")
    add_list_arguments(p)
