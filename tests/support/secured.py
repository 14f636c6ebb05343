"""A nats-server that authenticates every grctl role with the users ``grctl.nats.authconfig`` makes: a
password per role made on the spot and handed to nats-server through its environment, as the
shipped ``accounts.conf`` expects; the matching ``nats`` section of a grctl file, and connections as
any role.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from grctl.nats import authconfig
from grctl.nats.connection import Connection
from grctl.nats.server import NatsServerProcess


class Secured:
    """The users of ``accounts`` (name: worker types), their passwords, and files to connect with."""

    def __init__(self, directory: Path, accounts: dict[str, Sequence[str]]) -> None:
        self.dir = directory
        self.accounts = accounts
        self.passwords = {user: "pw-" + secrets.token_hex(8) for user in authconfig.users(dict(accounts))}
        (directory / "secrets").mkdir(parents=True, exist_ok=True)
        for (account, role), pw in self.passwords.items():
            (directory / "secrets" / f"{account}-{role}").write_text(pw + "\n")
        self.accounts_conf = directory / "accounts.conf"
        self.accounts_conf.write_text(authconfig.accounts_conf(dict(accounts)))

    def environment(self) -> dict[str, str]:
        """What nats-server needs in its environment for ``accounts.conf``."""
        return {authconfig.secret_variable(a, r, False): pw for (a, r), pw in self.passwords.items()}

    def nats_section(self, account: str, role: str) -> str:
        """The credential lines of a grctl file's ``nats`` section (its servers come before)."""
        return (f"  user: {authconfig.user_name(account, role)}\n"
                f"  password_file: {self.dir / 'secrets' / f'{account}-{role}'}\n")

    async def connect(self, url: str, account: str, role: str, name: str = "") -> Connection:
        return await Connection.connect([url], name=name or f"test-{role}",
                                        user=authconfig.user_name(account, role),
                                        password=self.passwords[(account, role)])


@contextmanager
def server_environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment (which nats-server inherits) while the block runs."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def secured_server(secured: Secured) -> NatsServerProcess:
    """A started single nats-server that includes ``secured``'s accounts."""
    conf = secured.dir / "nats-server.conf"
    conf.write_text("include ./accounts.conf\n")
    server = NatsServerProcess(store_dir=secured.dir / "store", config_file=conf,
                               log_file=secured.dir / "nats.log")
    with server_environment(secured.environment()):
        server.start()
    return server


def violations(log_text: str, user: str) -> list[str]:
    """The permission violations the server logged for ``user``."""
    return [line for line in log_text.splitlines()
            if "Violation" in line and re.search(rf'/user:{re.escape(user)}"', line)]
