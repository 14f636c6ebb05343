"""``grctl workflow ...``: the public grctl CLI's command shape, so scripts written for it run here.

    grctl workflow start --type T [--id ID] [--input JSON | --input-file PATH]
    grctl workflow cancel --id ID [--reason R]
    grctl workflow history --id ID [--run-id RUN]
    grctl workflow list

Each is the same command as its short form (``grctl start T``...), with its options (``--wait``,
``--json``, ``--follow``, the list filters); ``list`` and ``history`` print text, not an interactive view.
"""

from __future__ import annotations

import argparse

from grctl.cli import commands as cc
from grctl.cli import describe_retry as cli_runs
from grctl.cli import list_command as cli_list


def _prepare_public_start(args: argparse.Namespace) -> None:
    if args.input_file is not None:
        args.input = f"@{args.input_file}"
    cc.prepare_start(args)


def add_workflow_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("workflow", help="the same commands, in the public grctl CLI's shape",
                           description="Manage and inspect workflow runs (grctl workflow COMMAND --help).")
    wf = group.add_subparsers(dest="workflow_command", metavar="COMMAND", required=True)

    p = cc.add_command(wf, parents, "start", "start a workflow run", cc.cmd_start, _prepare_public_start)
    p.add_argument("--type", required=True, metavar="TYPE", help="the workflow type")
    p.add_argument("--id", metavar="ID", help="the workflow id (default: a new unique id, printed)")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--input", metavar="JSON", help=cc.INPUT_HELP)
    given.add_argument("--input-file", metavar="PATH", help="the workflow input from a JSON file")
    p.add_argument("--timeout", type=cc.positive_seconds, metavar="SECONDS", help=cc.RUN_TIMEOUT_HELP)
    p.add_argument("--wait", action="store_true", help="then wait for the run and print its result")
    p.add_argument("--json", action="store_true", help="print the started run as JSON")

    for name, help, command in (("cancel", "cancel the latest run of a workflow", cc.cmd_cancel),
                                ("terminate", "end the latest run of a workflow now", cc.cmd_terminate)):
        p = cc.add_command(wf, parents, name, help, command, cc.prepare_id)
        p.add_argument("--id", required=True, metavar="ID", help="the workflow id")
        cc.add_ending_arguments(p)

    p = cc.add_command(wf, parents, "history", "show the history of a run", cc.cmd_history, cc.prepare_id)
    p.add_argument("--id", required=True, metavar="ID", help="the workflow id")
    p.add_argument("--run-id", metavar="RUN_ID", help="a run of the workflow (default: the latest)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events until the run ends")
    p.add_argument("--json", action="store_true", help="one JSON object per event and line")

    p = cc.add_command(wf, parents, "describe", cli_runs.DESCRIBE_HELP, cli_runs.cmd_describe, cc.prepare_id)
    p.add_argument("--id", required=True, metavar="ID", help="the workflow id")
    p.add_argument("--run-id", metavar="RUN_ID", help="a run of the workflow (default: the latest)")
    p.add_argument("--json", action="store_true", help="print the run info, step, result and error as JSON")

    cli_list.add_list_parser(wf, parents)
