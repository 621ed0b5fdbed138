"""Who may talk to the service, and protection of the page against other sites.

- On a loopback address or a unix socket, no token: reaching the socket is the permission
  (the unix socket is made 0600). On any other address a token is required: generated on
  first start with ``secrets``, kept in ``<config>/service-token`` (mode 0600, readable by
  its owner only; root when kvmpool runs as root), sent as ``Authorization: Bearer TOKEN``
  by scripts; the page trades it once for an HttpOnly, SameSite=Strict cookie.
- Against cross-site requests (CSRF) and DNS rebinding: on loopback the ``Host`` header
  must name a loopback host (a rebound evil.example name is refused, for reads too); a
  state-changing request is refused when its ``Origin`` is not this server, when
  ``Sec-Fetch-Site`` says cross-site, and when it is authenticated by the cookie alone
  without the ``X-Kvmpool-CSRF`` header (which a cross-site form cannot add). JSON bodies
  must be sent as ``application/json`` (a form cannot, without a CORS preflight that this
  server never grants).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie

from kvmpool.errors import KvmpoolError

TOKEN_FILE = "service-token"  # noqa: S105 - a file name
COOKIE = "kvmpool_session"
CSRF_HEADER = "X-Kvmpool-CSRF"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Unauthorized(KvmpoolError):
    http_status = 401


class Forbidden(KvmpoolError):
    http_status = 403


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_token(config_dir: str) -> str:
    """The service token, made on first use (0600 in a 0700 directory if new)."""
    os.makedirs(config_dir, mode=0o700, exist_ok=True)
    path = os.path.join(config_dir, TOKEN_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        with open(path, encoding="ascii") as f:
            token = f.read().strip()
        if len(token) >= 32:
            return token
        raise KvmpoolError(f"the service token in {path} is too short",
                           hint="remove the file: a new token is made at the next start") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token


def token_path(config_dir: str) -> str:
    return os.path.join(config_dir, TOKEN_FILE)


@dataclass(frozen=True)
class Guard:
    """The rules for one listening socket."""

    token: str | None  # None: no token needed (loopback or unix socket)
    loopback_only: bool  # Host must then name a loopback host
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    def check(self, method: str, headers: Mapping[str, str], *, json_body: bool) -> None:
        """Raise Unauthorized/Forbidden for a request that must be refused."""
        host = headers.get("Host", "")
        if self.loopback_only or self.allowed_hosts:
            name = _hostname(host)
            ok = name.lower() in self.allowed_hosts or (self.loopback_only and is_loopback(name))
            if not ok:
                raise Forbidden(f"requests for host '{host}' are not served here",
                                hint="use http://127.0.0.1:PORT/ or add --allow-host")
        via_cookie = False
        if self.token is not None:
            bearer = headers.get("Authorization", "")
            cookie = _cookie(headers.get("Cookie", ""))
            if bearer.startswith("Bearer ") and _same(bearer[7:].strip(), self.token):
                pass
            elif cookie is not None and _same(cookie, self.token):
                via_cookie = True
            else:
                raise Unauthorized("a valid token is required",
                                   hint="send 'Authorization: Bearer TOKEN'; the token is in "
                                        "the kvmpool config directory, file service-token")
        if method in SAFE_METHODS:
            return
        origin = headers.get("Origin")
        if origin is not None and origin != f"http://{host}" and origin != f"https://{host}":
            raise Forbidden(f"cross-site request refused (origin {origin})")
        if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise Forbidden("cross-site request refused")
        if via_cookie and headers.get(CSRF_HEADER) is None:
            raise Forbidden(f"request without the {CSRF_HEADER} header refused")
        if json_body:
            ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise UnsupportedMedia("the body must be sent as application/json")

    def login(self, given: str) -> str:
        """The Set-Cookie value for a correct token (the page's login)."""
        if self.token is None:
            return f"{COOKIE}=none; Path=/; HttpOnly; SameSite=Strict"
        if not _same(given, self.token):
            raise Unauthorized("wrong token")
        return f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"


class UnsupportedMedia(KvmpoolError):
    http_status = 415


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cookie(header: str) -> str | None:
    if not header:
        return None
    try:
        jar: SimpleCookie = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None
