"""nats-server configuration and ``nsc`` commands for the roles of ``grctl.nats.roles``.

``python -m grctl.nats.authconfig --worker-types Orders,Billing`` prints an ``accounts.conf`` to include
from every node's configuration: one JetStream-enabled account with a user per role, and a system
account for cluster operations (``--nkeys`` for nkey users, ``--nsc`` for the JWT setup's commands).
The files in docs/examples/ are its output; a test keeps them equal.

Secrets are never written here: a password or nkey is a variable (``$GRCTL_ENGINE_PASSWORD``) that
nats-server takes from its environment, e.g. systemd's ``EnvironmentFile=``.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import sys
from collections.abc import Sequence

from grctl.nats import roles
from grctl.nats.roles import Permissions

ACCOUNT = "GRCTL"
SYSTEM_ACCOUNT = "SYS"
EXAMPLE_TYPES = ["Greeting"]  # grctl.demo's type, as in docs/examples/grctl-worker.yaml
# Where ``nsc push`` sends the accounts: a node of the cluster (nats-node.conf's); they share them.
EXAMPLE_PUSH_URL = "tls://nats1.internal:4222"
# The user ``nsc add operator --sys`` makes in the system account: the JWT setup's ``sys-admin``.
NSC_SYSTEM_USER = "sys"
# Where a node keeps the pushed account JWTs: its unit's StateDirectory (the rest of / is read-only).
RESOLVER_DIR = "/var/lib/nats/jwt"


def user_name(account: str, role: str) -> str:
    return f"{account.lower()}-{role}"


def secret_variable(account: str, role: str, nkeys: bool) -> str:
    return f"{account.upper()}_{role.upper()}_{'NKEY' if nkeys else 'PASSWORD'}".replace("-", "_")


def _quoted(items: list[str], indent: str) -> str:
    inner = f",\n{indent}  ".join(f'"{s}"' for s in items)
    return f"[\n{indent}  {inner}\n{indent}]"


def _user(account: str, perm: Permissions, nkeys: bool, indent: str) -> str:
    var = secret_variable(account, perm.role, nkeys)
    who = f"nkey: ${var}" if nkeys else f"user: {user_name(account, perm.role)}, password: ${var}"
    lines = [f"{indent}# {perm.comment}",
             f"{indent}{{ {who}",
             f"{indent}  permissions: {{",
             f"{indent}    publish: {{ allow: {_quoted(perm.publish, indent + '    ')} }}",
             f"{indent}    subscribe: {{ allow: {_quoted(perm.subscribe, indent + '    ')} }}"]
    if perm.responds:
        lines.append(f"{indent}    allow_responses: true")
    lines += [f"{indent}  }}", f"{indent}}}"]
    return "\n".join(lines)


def account_block(account: str, worker_types: Sequence[str], nkeys: bool = False) -> str:
    """One JetStream-enabled account with a user per role."""
    users = "\n".join(_user(account, p, nkeys, "      ") for p in roles.all_roles(worker_types))
    return f"  {account}: {{\n    jetstream: enabled\n    users: [\n{users}\n    ]\n  }}\n"


def accounts_conf(accounts: dict[str, Sequence[str]], nkeys: bool = False) -> str:
    """``accounts { ... }`` with each account of ``accounts`` (its name: its worker types) and the system
    account, whose user runs cluster operations (``nats server raft peer-remove``...)."""
    command = "python -m grctl.nats.authconfig" + "".join(
        f" --account {a}={','.join(t)}" for a, t in accounts.items()) + (" --nkeys" if nkeys else "")
    header = (f"# Made by `{command}`: the least privilege of each grctl role.\n"
              "# Include it from every node's nats-server.conf. The secrets come from nats-server's "
              "environment.\n")
    sys_var = secret_variable(SYSTEM_ACCOUNT, "admin", nkeys)
    sys_user = f"nkey: ${sys_var}" if nkeys else f"user: sys-admin, password: ${sys_var}"
    blocks = "".join(account_block(a, t, nkeys) for a, t in accounts.items())
    system = f"  {SYSTEM_ACCOUNT}: {{\n    users: [ {{ {sys_user} }} ]\n  }}\n"
    return f"{header}accounts {{\n{blocks}{system}}}\nsystem_account: {SYSTEM_ACCOUNT}\n"


def nsc_commands(account: str, worker_types: Sequence[str]) -> str:
    """The ``nsc`` commands that create one account and its role users for the JWT setup."""
    lines = [f"nsc add account --name {account}",
             f"nsc edit account --name {account} --js-mem-storage -1 --js-disk-storage -1 "
             "--js-streams -1 --js-consumer -1"]
    for perm in roles.all_roles(worker_types):
        name = user_name(account, perm.role)
        args = [f"--allow-pub {shlex.quote(','.join(perm.publish))}",
                f"--allow-sub {shlex.quote(','.join(perm.subscribe))}"]
        if perm.responds:
            args.append("--allow-pub-response")
        lines += [f"# {perm.comment}",
                  f"nsc add user --account {account} --name {name} \\\n    " + " \\\n    ".join(args),
                  f"nsc generate creds --account {account} --name {name} > {name}.creds"]
    return "\n".join(lines) + "\n"


def nsc_script(accounts: dict[str, Sequence[str]], push_url: str = EXAMPLE_PUSH_URL) -> str:
    """A whole ``nsc`` session: an operator with a system account whose accounts ``nsc push`` sends to
    ``push_url``, the accounts and their users with a ``.creds`` file each (the system user's too: cluster
    operations), and the resolver configuration that every node then includes instead of
    ``accounts.conf``, its account JWTs kept in ``RESOLVER_DIR``."""
    command = "python -m grctl.nats.authconfig --nsc" + "".join(
        f" --account {a}={','.join(t)}" for a, t in accounts.items())
    if push_url != EXAMPLE_PUSH_URL:
        command += f" --push-url {shlex.quote(push_url)}"
    sys_user = NSC_SYSTEM_USER
    return (f"#!/bin/sh\n# Made by `{command}`: the decentralised (JWT) setup of the same roles.\n"
            "set -eu\n"
            "nsc add operator --name grctl --sys --generate-signing-key\n"
            "# `nsc push` sends the accounts to this node; the nodes pass them on to each other\n"
            f"nsc edit operator --account-jwt-server-url {shlex.quote(push_url)}\n"
            + "".join(nsc_commands(a, t) for a, t in accounts.items())
            + "# the system account's user: cluster operations (grctl cluster peers, remove-peer)\n"
              f"nsc generate creds --account {SYSTEM_ACCOUNT} --name {sys_user} > {sys_user}.creds\n"
              "# Every node includes resolver.conf instead of accounts.conf (nats-node.conf says how); the\n"
              f"# account JWTs pushed to a node are kept in {RESOLVER_DIR}, a directory the node may write.\n"
              f"nsc generate config --nats-resolver --sys-account {SYSTEM_ACCOUNT} \\\n"
              f"    | sed \"s|^\\([[:space:]]*\\)dir: .*|\\1dir: '{RESOLVER_DIR}'|\" > resolver.conf\n"
              f"grep -q \"dir: '{RESOLVER_DIR}'\" resolver.conf\n"
              "# Once the nodes run with it, send them the accounts (the nodes' CA trusted for TLS):\n"
              "#   SSL_CERT_FILE=/etc/nats/tls/ca.pem nsc push --all\n")


def users(accounts: dict[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(account, role) of every user ``accounts_conf`` makes, the system account's included."""
    made = [(a, p.role) for a, t in accounts.items() for p in roles.all_roles(t)]
    return [*made, (SYSTEM_ACCOUNT, "admin")]


def secrets_env(accounts: dict[str, Sequence[str]], nkeys: bool = False) -> str:
    """Fresh random passwords for every user of ``accounts_conf``, as nats-server's environment file.
    (With nkeys, the variables hold public keys: fill them in from each role's ``nk -gen user``.)"""
    lines = ["# nats-server's environment (EnvironmentFile=): root-only, never in version control."]
    for account, role in users(accounts):
        # nats-server reads a variable's value as a configuration token: one that starts with a digit
        # or "-" is taken for a number and the file does not load, so every password starts with a letter.
        value = "" if nkeys else "p" + secrets.token_urlsafe(24)
        lines.append(f"{secret_variable(account, role, nkeys)}={value}")
    return "\n".join(lines) + "\n"


def _account(text: str) -> tuple[str, list[str]]:
    name, _, types = text.partition("=")
    return name, [t for t in types.split(",") if t]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grctl.nats.authconfig",
                                     description="nats-server accounts and users for grctl's roles")
    parser.add_argument("--worker-types", default=",".join(EXAMPLE_TYPES),
                        help="the workflow types of the worker and application users (comma-separated)")
    parser.add_argument("--account", action="append", type=_account, metavar="NAME=TYPES",
                        help="an account and its worker types; repeat for tenants (default: GRCTL)")
    parser.add_argument("--nkeys", action="store_true", help="nkey users instead of passwords")
    parser.add_argument("--nsc", action="store_true", help="print the nsc commands instead")
    parser.add_argument("--push-url", default=EXAMPLE_PUSH_URL,
                        help="with --nsc: the node `nsc push` sends the accounts to")
    parser.add_argument("--secrets", action="store_true",
                        help="print nats-server's environment file with a new random password per user")
    args = parser.parse_args(argv)
    accounts = dict(args.account or [(ACCOUNT, [t for t in args.worker_types.split(",") if t])])
    try:
        if args.nsc:
            sys.stdout.write(nsc_script(accounts, args.push_url))
        elif args.secrets:
            sys.stdout.write(secrets_env(accounts, nkeys=args.nkeys))
        else:
            sys.stdout.write(accounts_conf(accounts, nkeys=args.nkeys))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
