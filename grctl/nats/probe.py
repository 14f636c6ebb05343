"""Whether a NATS user may do what its grctl role needs, asked of the server without publishing anything.

The server tells a user its own permissions (``$SYS.REQ.USER.INFO``); they are compared with the role's
(``grctl.nats.roles``) pattern by pattern, so a missing permission is found before the program needs it,
not as a refused request in the middle of a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATSClient

from grctl import settings
from grctl.nats.requests import request
from grctl.nats.roles import USER_INFO, Permissions, covers, overlap


@dataclass(frozen=True)
class Granted:
    """One side (publish or subscribe) of what the server grants a user; no allow list: everything."""

    allow: list[str] | None = None
    deny: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> Granted:
        raw = raw or {}
        allow = raw.get("allow")
        return cls(list(allow) if allow is not None else None, list(raw.get("deny") or []))

    def permits(self, pattern: str) -> bool:
        """Whether every subject of ``pattern`` is allowed and none denied."""
        if any(overlap(d, pattern) for d in self.deny):
            return False
        return self.allow is None or any(covers(a, pattern) for a in self.allow)


@dataclass(frozen=True)
class UserInfo:
    user: str
    account: str
    publish: Granted
    subscribe: Granted
    responds: bool

    @property
    def unrestricted(self) -> bool:
        return self.publish.allow is None and not self.publish.deny and self.subscribe.allow is None


async def user_info(nc: NATSClient) -> UserInfo:
    """The connected user's permissions, as the server has them."""
    reply = await request(nc, USER_INFO, b"", timeout=settings.JS_API_TIMEOUT)
    data = json.loads(reply.data).get("data") or {}
    perms = data.get("permissions") or {}
    return UserInfo(str(data.get("user", "")), str(data.get("account_name") or data.get("account", "")),
                    Granted.parse(perms.get("publish")), Granted.parse(perms.get("subscribe")),
                    perms.get("responses") is not None or not perms)


def missing(info: UserInfo, needs: Iterable[Permissions]) -> list[str]:
    """What ``info`` lacks of the roles ``needs`` (e.g. ``publish to "grctl_meta.*"``)."""
    lacking: list[str] = []
    for need in needs:
        lacking += [f'publish to "{s}" ({need.role})' for s in need.publish if not info.publish.permits(s)]
        lacking += [f'subscribe to "{s}" ({need.role})' for s in need.subscribe
                    if not info.subscribe.permits(s)]
        if need.responds and not info.responds:
            lacking.append(f"allow_responses ({need.role})")
    return lacking


async def may_publish(nc: NATSClient, subject: str) -> bool:
    """Whether the connected user may publish to ``subject``; True when the server cannot tell."""
    try:
        return (await user_info(nc)).publish.permits(subject)
    except Exception:  # an older server, or no permission to ask: let the publish itself tell
        return True
