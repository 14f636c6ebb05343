"""``grctl cluster``: the NATS cluster under grctl, for the runbooks of docs/deployment.md.

    grctl cluster status [--wait SECONDS]     the stream's replicas: leader, current or not (any grctl user)
    grctl cluster peers                       the JetStream meta leader and the servers up (system user)
    grctl cluster remove-peer NAME            remove a node gone for good, once there is a meta leader
                                              (system user)
"""

from __future__ import annotations

import argparse
import asyncio
import time

from grctl import settings
from grctl.cli.commands import EXIT_OK, EXIT_RUN_FAILED, CliError, add_command
from grctl.client.client import Client
from grctl.nats import peers, subjects

EXIT_NOT_CURRENT = EXIT_RUN_FAILED


def _show(replicas: list[peers.Replica]) -> bool:
    """Print the replicas; whether all are current."""
    print(f"stream {subjects.STREAM}: {len(replicas)} replica(s)")
    for r in replicas:
        state = "leader" if r.leader else ("OFFLINE" if r.offline else ("current" if r.current else "BEHIND"))
        lag = f" (lag {r.lag})" if r.lag else ""
        print(f"  {r.name:<20} {state}{lag}")
    return bool(replicas) and all(r.current and not r.offline for r in replicas)


async def cmd_status(client: Client, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + (args.wait or 0)
    while True:
        current = _show(await peers.stream_replicas(client.connection.nc))
        if current or time.monotonic() >= deadline:
            return EXIT_OK if current else EXIT_NOT_CURRENT
        await asyncio.sleep(settings.REPLICA_STATUS_POLL)
        print()


async def cmd_peers(client: Client, args: argparse.Namespace) -> int:
    meta = await peers.meta_group(client.connection.nc)
    if not meta.servers:
        raise CliError(EXIT_RUN_FAILED, "no server answered: is this a system-account user? "
                                        "(docs/deployment.md#security)")
    print(f"JetStream meta leader: {meta.leader or 'none (an election is under way)'}")
    print(f"servers up: {', '.join(meta.servers)}")
    for name, current in sorted(meta.peers.items()):
        print(f"  {name:<20} {'current' if current else 'NOT CURRENT (down or catching up)'}")
    return EXIT_OK


async def cmd_remove_peer(client: Client, args: argparse.Namespace) -> int:
    try:
        await peers.remove_peer(client.connection.nc, args.name, args.timeout)
    except (RuntimeError, TimeoutError) as exc:
        raise CliError(EXIT_RUN_FAILED, str(exc)) from None
    print(f"removed {args.name} from the JetStream cluster; its replicas are being placed on the other nodes "
          f"(`grctl cluster status --wait 600` waits until they are current)")
    return EXIT_OK


def _nothing(args: argparse.Namespace) -> None:
    return None


def add_cluster_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cluster", help="the NATS cluster: replicas, meta leader, removing a dead node",
                       description="The NATS cluster under grctl (the runbooks of docs/deployment.md).")
    commands = p.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    status = add_command(commands, parents, "status", "where the stream's replicas are and whether they are "
                         "current (exit 1 when one is not)", cmd_status, _nothing)
    status.add_argument("--wait", type=float, metavar="SECONDS", default=0,
                        help="until every replica is current, for at most SECONDS")
    add_command(commands, parents, "peers", "the JetStream meta leader and the servers that are up "
                "(a system-account user)", cmd_peers, _nothing)
    remove = add_command(commands, parents, "remove-peer", "remove a node that is gone for good from the "
                         "JetStream cluster, once it has a meta leader (a system-account user)",
                         cmd_remove_peer, _nothing)
    remove.add_argument("name", help="the dead node's server_name")
    remove.add_argument("--timeout", type=float, default=settings.PEER_REMOVE_TIMEOUT, metavar="SECONDS",
                        help="how long to wait for a meta leader (default %(default).0f)")
