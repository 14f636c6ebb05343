"""Test credentials made on the spot: nkeys, operator/account/user JWTs, .creds files and a TLS CA, and
for each way to authenticate (``SETUPS``) the nats-server configuration with the matching client side.

Nothing here is a fixture of real secrets: every key is generated per test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nkeys
import pytest

from grctl.nats.server import NatsServerProcess


def new_keypair(prefix: int) -> nkeys.KeyPair:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return nkeys.from_seed(bytearray(seed))


def public(kp: nkeys.KeyPair) -> str:
    return kp.public_key.decode()


def seed_text(kp: nkeys.KeyPair) -> str:
    return kp.seed.decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_jwt(claims: dict[str, Any], signer: nkeys.KeyPair) -> str:
    """A NATS (v2) JWT: ed25519-nkey signature by ``signer`` over header.claims."""
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = dict(claims, iat=int(time.time()), iss=public(signer))
    claims["jti"] = (
        base64.b32encode(hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest())
        .decode()
        .rstrip("=")
    )
    body = _b64(json.dumps(claims).encode())
    signature = signer.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{_b64(signature)}"


@dataclass
class Operator:
    """An operator, a system account, one JetStream-enabled account and one user of it, for
    ``resolver: MEMORY``."""

    operator: nkeys.KeyPair
    account: nkeys.KeyPair
    user: nkeys.KeyPair
    operator_jwt: str
    account_jwt: str
    user_jwt: str
    system: nkeys.KeyPair
    system_jwt: str

    @classmethod
    def create(cls) -> Operator:
        op = new_keypair(nkeys.PREFIX_BYTE_OPERATOR)
        acc = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        usr = new_keypair(nkeys.PREFIX_BYTE_USER)
        op_jwt = encode_jwt(
            {"sub": public(op), "name": "test-op", "nats": {"type": "operator", "version": 2}}, op
        )
        limits = {
            "subs": -1,
            "data": -1,
            "payload": -1,
            "imports": -1,
            "exports": -1,
            "wildcards": True,
            "conn": -1,
            "leaf": -1,
            "mem_storage": -1,
            "disk_storage": -1,
            "streams": -1,
            "consumer": -1,
        }
        acc_jwt = encode_jwt(
            {
                "sub": public(acc),
                "name": "grctl",
                "nats": {
                    "limits": limits,
                    "default_permissions": {"pub": {}, "sub": {}},
                    "type": "account",
                    "version": 2,
                },
            },
            op,
        )
        usr_jwt = encode_jwt(
            {
                "sub": public(usr),
                "name": "grctld",
                "nats": {
                    "pub": {},
                    "sub": {},
                    "subs": -1,
                    "data": -1,
                    "payload": -1,
                    "type": "user",
                    "version": 2,
                },
            },
            acc,
        )
        sys_acc = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        sys_jwt = encode_jwt(
            {
                "sub": public(sys_acc),
                "name": "SYS",
                "nats": {
                    "limits": {"subs": -1, "data": -1, "payload": -1, "conn": -1},
                    "type": "account",
                    "version": 2,
                },
            },
            op,
        )
        return cls(op, acc, usr, op_jwt, acc_jwt, usr_jwt, sys_acc, sys_jwt)

    def server_config(self) -> str:
        return (
            f"operator: {self.operator_jwt}\nsystem_account: {public(self.system)}\nresolver: MEMORY\n"
            f"resolver_preload: {{\n  {public(self.account)}: {self.account_jwt}\n"
            f"  {public(self.system)}: {self.system_jwt}\n}}\n"
        )

    def user_creds(self, name: str, publish: list[str], subscribe: list[str], responds: bool) -> str:
        """A ``.creds`` file of a new user of the account with these permissions (what ``nsc add user
        --allow-pub ... --allow-sub ... --allow-pub-response`` makes)."""
        kp = new_keypair(nkeys.PREFIX_BYTE_USER)
        claims: dict[str, Any] = {"pub": {"allow": publish}, "sub": {"allow": subscribe}, "subs": -1,
                                  "data": -1, "payload": -1, "type": "user", "version": 2}
        if responds:
            claims["resp"] = {"max": 1, "ttl": 0}
        jwt = encode_jwt({"sub": public(kp), "name": name, "nats": claims}, self.account)
        return creds_text(jwt, kp)

    def creds(self) -> str:
        return creds_text(self.user_jwt, self.user)


def creds_text(user_jwt: str, user: nkeys.KeyPair) -> str:
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed_text(user)}\n"
        "------END USER NKEY SEED------\n"
    )


@dataclass
class CA:
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert: Path
    client_key: Path


def make_tls(directory: Path) -> CA:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with the
    openssl command line tool."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("openssl")
    d = directory
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=grctl test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server-key.pem",
        "-out",
        "server.csr",
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=grctld",
        "-keyout",
        "client-key.pem",
        "-out",
        "client.csr",
    )
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    run(
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "client.ext",
        "-out",
        "client.pem",
    )
    return CA(d / "ca.pem", d / "server.pem", d / "server-key.pem", d / "client.pem", d / "client-key.pem")


# --- one nats-server configuration per way to authenticate, with the client side of it ---------------


@dataclass
class Setup:
    server_conf: str
    nats: str  # the daemon's nats section (without servers)
    wrong: str  # the same with a wrong secret
    secrets: list[str]
    scheme: str = "nats"
    env: dict[str, str] = field(default_factory=dict)
    refused: str = "NATS refused the credentials"


def auth_server(setup: Setup, d: Path) -> NatsServerProcess:
    """A nats-server (not started) that authenticates as ``setup`` says; its store and log in ``d``."""
    conf = d / "nats-server.conf"
    conf.write_text(setup.server_conf)
    return NatsServerProcess(store_dir=d / "store", config_file=conf, log_file=d / "nats.log")


def user_password(d: Path) -> Setup:
    pw = "pw-" + secrets.token_hex(8)
    (d / "secrets").mkdir()
    (d / "secrets" / "nats-password").write_text(pw + "\n")
    (d / "secrets" / "wrong").write_text("not-" + pw)
    return Setup(
        f'authorization {{ user: alice, password: "{pw}" }}\n',
        "  user: alice\n  password_file: secrets/nats-password\n",
        "  user: alice\n  password_file: secrets/wrong\n",
        [pw, "not-" + pw],
    )


def token(d: Path) -> Setup:
    tok = "tok-" + secrets.token_hex(8)
    creds = d / "credentials"  # as systemd's LoadCredential= would provide it
    creds.mkdir()
    (creds / "nats-token").write_text(tok)
    (creds / "wrong-token").write_text(tok[::-1])
    return Setup(
        f'authorization {{ token: "{tok}" }}\n',
        "  token_file: nats-token\n",
        "  token_file: wrong-token\n",
        [tok, tok[::-1]],
        env={"CREDENTIALS_DIRECTORY": str(creds)},
    )


def nkey(d: Path) -> Setup:
    user, other = new_keypair(nkeys.PREFIX_BYTE_USER), new_keypair(nkeys.PREFIX_BYTE_USER)
    (d / "user.nk").write_text(seed_text(user) + "\n")
    (d / "other.nk").write_text(seed_text(other) + "\n")
    return Setup(
        f"authorization {{ users = [ {{ nkey: {public(user)} }} ] }}\n",
        "  nkey_seed_file: user.nk\n",
        "  nkey_seed_file: other.nk\n",
        [seed_text(user), seed_text(other)],
    )


def creds(d: Path) -> Setup:
    good, stranger = Operator.create(), Operator.create()
    (d / "grctl.creds").write_text(good.creds())
    (d / "stranger.creds").write_text(stranger.creds())
    return Setup(
        good.server_config(),
        "  credentials_file: grctl.creds\n",
        "  credentials_file: stranger.creds\n",
        [seed_text(good.user), seed_text(stranger.user)],
    )


def tls(d: Path) -> Setup:
    try:
        ca = make_tls(d / "pki")
        other = make_tls(d / "other-pki")
    except FileNotFoundError:
        pytest.skip("the openssl command line tool is not installed (apt-get install openssl)")
    # mutual TLS: the server verifies the client's certificate too
    client = f"    cert_file: {ca.client_cert}\n    key_file: {ca.client_key}\n"
    return Setup(
        f'tls {{ cert_file: "{ca.cert_file}", key_file: "{ca.key_file}", '
        f'ca_file: "{ca.ca_file}", verify: true }}\n',
        f"  tls:\n    ca_file: {ca.ca_file}\n" + client,
        f"  tls:\n    ca_file: {other.ca_file}\n" + client,
        [ca.key_file.read_text().splitlines()[1], ca.client_key.read_text().splitlines()[1]],
        scheme="tls",
        refused="TLS with NATS failed",
    )


SETUPS: dict[str, Callable[[Path], Setup]] = {
    "user-password": user_password,
    "token": token,
    "nkey-seed": nkey,
    "creds-file": creds,
    "tls": tls,
}
