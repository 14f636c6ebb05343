"""Who may use the console, and what: credentials give a role (viewer reads, admin also acts), every
mutating request must carry the CSRF token of its form, and every answer carries headers that keep
pages from running anything but the console's own script.

Without credentials a request must name a loopback host (``Host: 127.0.0.1:9465``), which keeps a
page whose name was rebound to 127.0.0.1 out. The CSRF token is a random value in a cookie
(``SameSite=Strict``, ``HttpOnly``) that each form repeats in a hidden field (the double-submit
pattern); a POST whose ``Origin`` names another host is refused too. The three operations endpoints
(``/metrics``, ``/healthz``, ``/readyz``) stay open, as before.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from grctl.console.settings import ConsoleSettings

ADMIN = "admin"
VIEWER = "viewer"
CSRF_COOKIE = "grctl_csrf"
CSRF_FIELD = "csrf"
OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")  # what a path prefix may look like

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def role_of(settings: ConsoleSettings, authorization: str) -> str | None:
    """The role the ``Authorization`` header proves (a bearer token, or any user name with the role's
    password in basic authentication); None when it proves none."""
    if not settings.protected:
        return ADMIN
    scheme, _, value = authorization.partition(" ")
    secret = ""
    if scheme.lower() == "bearer":
        secret = value.strip()
    elif scheme.lower() == "basic":
        try:
            secret = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    if not secret:
        return None
    given = secret.encode()
    if settings.admin_password and hmac.compare_digest(given, settings.admin_password.encode()):
        return ADMIN
    if settings.viewer_password and hmac.compare_digest(given, settings.viewer_password.encode()):
        return VIEWER
    return None


def loopback_host(host: str) -> bool:
    """Whether a request's ``Host`` names this machine's loopback: an open console answers nothing else,
    so a web page whose own name was made to resolve to 127.0.0.1 (DNS rebinding) cannot use it."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def prefix_of(request: web.Request, settings: ConsoleSettings) -> str:
    """Where the console is published: the proxy's ``X-Forwarded-Prefix``, else the configured one."""
    for candidate in (request.headers.get("X-Forwarded-Prefix", ""), settings.path_prefix):
        candidate = candidate.strip().rstrip("/")
        if candidate and _PREFIX.match(candidate):
            return candidate
    return ""


def same_origin(request: web.Request) -> bool:
    """False when the request says it comes from a page of another host."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return urlsplit(origin).netloc == host


def middleware(settings: ConsoleSettings) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        if not settings.protected and not loopback_host(request.host):
            return web.Response(status=421, text="without console credentials only a loopback host name "
                                                 "(127.0.0.1, localhost, [::1]) is served\n",
                                headers=SECURITY_HEADERS)
        role = role_of(settings, request.headers.get("Authorization", ""))
        if role is None:
            return web.Response(status=401, text="credentials required\n", headers={
                "WWW-Authenticate": 'Basic realm="grctl console", charset="UTF-8"', **SECURITY_HEADERS})
        request["role"] = role
        request["prefix"] = prefix_of(request, settings)
        token = request.cookies.get(CSRF_COOKIE, "")
        fresh = not token
        request["csrf"] = token = token or secrets.token_urlsafe(32)
        if request.method not in ("GET", "HEAD"):
            refused = await _refusal(request, role, token, fresh)
            if refused is not None:
                return refused
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        if fresh:
            response.set_cookie(CSRF_COOKIE, token, path=f"{request['prefix']}/", httponly=True,
                                samesite="Strict")
        return response

    return guard


async def _refusal(request: web.Request, role: str, token: str, fresh: bool) -> web.Response | None:
    if role != ADMIN:
        return web.Response(status=403, text="read-only access: actions need the admin password\n",
                            headers=SECURITY_HEADERS)
    form = await request.post()
    given = str(form.get(CSRF_FIELD, ""))
    if fresh or not same_origin(request) or not hmac.compare_digest(given.encode(), token.encode()):
        return web.Response(status=403, text="refused: the form's CSRF token does not match (reload the "
                                             "page and try again)\n", headers=SECURITY_HEADERS)
    return None
