"""The HTTP server: routing, the security checks, errors as JSON, the page, /metrics.

Built on the standard library's ``http.server.ThreadingHTTPServer`` (one thread per
connection). Why no framework: the service is a thin layer over ``Manager`` (a few dozen
routes, JSON in and out, a few static files), so what a framework would add (routing,
body parsing, an ASGI server) is a hundred lines here, while a framework would bring
several packages to install, audit and keep in step on every KVM host, and would slow
the start (starlette + uvicorn + anyio import in ~0.3 s; this starts in well under that).
The manager's calls block (flock, host commands, copy loops), which suits threads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import socketserver
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from kvmpool.errors import InvalidArgument, KvmpoolError, NotFound
from kvmpool.host.run import Runner
from kvmpool.manager import Manager
from kvmpool.paths import Paths
from kvmpool.service import metrics, openapi
from kvmpool.service.auth import SAFE_METHODS, Guard, Unauthorized
from kvmpool.service.call import Call, Reply, Route
from kvmpool.service.jobs import Jobs
from kvmpool.service.schema import Field, check_text

STATIC = Path(__file__).with_name("static")
MAX_JSON = 1 << 20
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "Cache-Control": "no-store",
}


class Service:
    """What every request shares: paths, jobs, counters, the guard, the route table."""

    def __init__(self, paths: Paths, guard: Guard, *, log: Callable[[str], None] | None = None,
                 dry_run: bool = False) -> None:
        self.paths = paths
        self.guard = guard
        self.log = log or (lambda _line: None)
        self.dry_run = dry_run
        self.ops = metrics.Operations()
        self.jobs = Jobs(self.ops.observe)
        from kvmpool.service import routes_more, routes_pools, routes_volumes

        self.routes: tuple[Route, ...] = (
            *routes_pools.ROUTES, *routes_volumes.ROUTES, *routes_more.ROUTES,
            *_meta_routes())
        # Downloads are spooled per server process; a killed server's spool is removed by
        # the next one (another server on the same root keeps its own).
        spools = os.path.join(paths.data, "service-spool")
        self.spool = os.path.join(spools, str(os.getpid()))
        with contextlib.suppress(FileNotFoundError):
            for entry in os.listdir(spools):
                if not (entry.isdigit() and os.path.exists(f"/proc/{entry}")):
                    shutil.rmtree(os.path.join(spools, entry), ignore_errors=True)

    def manager(self) -> Manager:
        """A manager per request: its runner's history is that request's alone."""
        return Manager(self.paths, Runner(dry_run=self.dry_run),
                       warn=lambda msg: self.log(f"warning: {msg}"))

    def close(self) -> None:
        self.jobs.cancel_all(wait=10.0)
        shutil.rmtree(self.spool, ignore_errors=True)


# ---------------------------------------------------------------- meta routes


def _openapi(svc: Service, call: Call) -> Reply:
    return Reply(data=openapi.document(svc.routes))


def _session(svc: Service, call: Call) -> Reply:
    authenticated = True
    if svc.guard.token is not None:
        try:
            svc.guard.check("GET", call.headers, json_body=False)
        except Unauthorized:
            authenticated = False
    return Reply(data={"auth_required": svc.guard.token is not None,
                       "authenticated": authenticated})


def _login(svc: Service, call: Call) -> Reply:
    cookie = svc.guard.login(call.text("token") or "")
    return Reply(data={"authenticated": True}, headers={"Set-Cookie": cookie})


def _logout(svc: Service, call: Call) -> Reply:
    return Reply(data={"authenticated": False}, headers={
        "Set-Cookie": "kvmpool_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"})


def _metrics(svc: Service, call: Call) -> Reply:
    return Reply(text=metrics.render(svc.manager(), svc.ops, svc.jobs.running()),
                 content_type="text/plain; version=0.0.4; charset=utf-8")


def _meta_routes() -> Sequence[Route]:
    return (
        Route("GET", "/api/openapi.json", _openapi, "meta.openapi", "This document.",
              tag="meta"),
        Route("GET", "/api/session", _session, "meta.session",
              "Whether a token is needed, and whether this request has one.", tag="meta",
              public=True),
        Route("POST", "/api/session", _login, "meta.login",
              "Trade the token for a session cookie (the page's login).", tag="meta",
              body=(Field("token", required=True),), public=True),
        Route("DELETE", "/api/session", _logout, "meta.logout", "Drop the session cookie.",
              tag="meta", public=True),
        Route("GET", "/metrics", _metrics, "meta.metrics", "Prometheus metrics.", tag="meta"),
    )


# ---------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kvmpool"
    sys_version = ""
    service: Service  # set on the subclass made per server
    body_read = False

    def do_GET(self) -> None:
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def address_string(self) -> str:
        return str(self.client_address[0]) if self.client_address else "unix"

    def log_message(self, format: str, *args: Any) -> None:
        self.service.log(f"http {self.address_string()} " + format % args)

    # ------------------------------------------------------------ dispatch

    def dispatch(self) -> None:
        self.body_read = False
        started = time.monotonic()
        route: Route | None = None
        reply: Reply
        failed = False
        try:
            url = urlsplit(self.path)
            route, params = self.find(url.path)
            if route is None:
                reply = self.static(url.path)
            else:
                reply = self.call_route(route, params, url.query)
        except KvmpoolError as err:
            failed = True
            reply = Reply(err.http_status, {"error": err.message, "hint": err.hint})
        except Exception as err:
            failed = True
            self.service.log("".join(traceback.format_exception(err)))
            reply = Reply(500, {"error": f"internal error: {type(err).__name__}: {err}",
                                "hint": "this is a bug in kvmpool; the server log has details"})
        counted = route is not None and route.path.startswith("/api/") and not reply.job
        if counted and route is not None and route.method not in SAFE_METHODS and \
                reply.status not in (401, 403, 405, 411, 413, 415):
            self.service.ops.observe(route.op, time.monotonic() - started,
                                         failed or reply.status >= 400)
        self.send(reply)

    def find(self, path: str) -> tuple[Route | None, dict[str, str]]:
        allowed = []
        for route in self.service.routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method != self.command:
                allowed.append(route.method)
                continue
            params = {}
            for key, value in m.groupdict().items():
                try:
                    text = unquote(value, errors="strict")
                except UnicodeDecodeError:
                    raise InvalidArgument(f"the {key} in the URL is not valid UTF-8") from None
                params[key] = check_text(text, f"the {key} in the URL")
            return route, params
        if allowed:
            raise MethodNotAllowed(f"{self.command} is not allowed here; use "
                                   + ", ".join(sorted(set(allowed))))
        if path.startswith("/api/"):
            raise NotFound(f"no such API path: {path}", hint="see /api/openapi.json")
        return None, {}

    def call_route(self, route: Route, params: dict[str, str], query: str) -> Reply:
        headers = {k: v for k, v in self.headers.items()}
        length = self.content_length()
        if not route.public:
            self.service.guard.check(self.command, headers,
                                     json_body=route.body is not None and length > 0)
        elif self.command not in SAFE_METHODS:
            Guard(None, self.service.guard.loopback_only,
                  self.service.guard.allowed_hosts).check(
                self.command, headers, json_body=length > 0)
        call = Call(self.command, params, dict(parse_qsl(query)), headers)
        for key, value in call.query.items():
            check_text(value, f"query parameter '{key}'")
        known = {f.name for f in route.query}
        for key in call.query:
            if key not in known:
                raise InvalidArgument(f"unknown query parameter '{key[:60]}'")
        if route.stream_in:
            if self.headers.get("Content-Length") is None:
                raise LengthRequired("the upload needs a Content-Length")
            call.stream, call.length = self.rfile, length  # type: ignore[assignment]
            self.body_read = True  # the route reads it all, or answers Connection: close
        elif length:
            if route.body is None:
                raise InvalidArgument("this request takes no body")
            if length > MAX_JSON:
                raise TooLarge(f"the body is larger than {MAX_JSON} bytes")
            call.raw = self.rfile.read(length)
            self.body_read = True
        route.parse(call)
        return route.handler(self.service, call)

    def content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise LengthRequired("chunked bodies are not accepted: send a Content-Length")
        raw = self.headers.get("Content-Length", "0").strip() or "0"
        if not raw.isdigit():
            self.close_connection = True
            raise InvalidArgument("Content-Length is not a number")
        return int(raw)

    def static(self, path: str) -> Reply:
        if self.command not in ("GET", "HEAD"):
            raise NotFound(f"no such path: {path}")
        if path in ("/", "/index.html"):
            name = "index.html"
        elif path.startswith("/static/"):
            name = path.removeprefix("/static/")
        else:
            raise NotFound(f"no such path: {path}")
        known = {p.name for p in STATIC.iterdir() if p.is_file()}
        if name not in known:
            raise NotFound(f"no such file: {path}")
        ctype = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}.get(
                     Path(name).suffix, "application/octet-stream")
        return Reply(text=(STATIC / name).read_text(encoding="utf-8"), content_type=ctype)

    # ------------------------------------------------------------ answers

    def send(self, reply: Reply) -> None:
        # A body we did not read would be taken for the next request: close instead.
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") and \
                not self.body_read:
            self.close_connection = True
        try:
            if reply.file is not None:
                self.send_file(reply)
                return
            payload = b"" if reply.status == 204 else reply.payload()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.common_headers(reply)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def common_headers(self, reply: Reply) -> None:
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if self.close_connection or reply.headers.get("Connection") == "close":
            self.close_connection = True
            if "Connection" not in reply.headers:
                self.send_header("Connection", "close")

    def send_file(self, reply: Reply) -> None:
        assert reply.file is not None
        try:
            with open(reply.file, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(size))
                self.common_headers(reply)
                self.end_headers()
                if self.command != "HEAD":
                    shutil.copyfileobj(f, self.wfile, 1 << 20)
        finally:
            if reply.remove_file:  # sent once, even when the reader went away
                os.unlink(reply.file)


class MethodNotAllowed(KvmpoolError):
    http_status = 405


class LengthRequired(KvmpoolError):
    http_status = 411


class TooLarge(KvmpoolError):
    http_status = 413


# ---------------------------------------------------------------- servers


class TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def make_server(service: Service, *, host: str = "127.0.0.1", port: int = 8080,
                unix_path: str | None = None) -> socketserver.BaseServer:
    handler = type("BoundHandler", (Handler,), {"service": service})
    if unix_path is not None:
        if os.path.exists(unix_path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(unix_path)
            except OSError:
                os.unlink(unix_path)  # stale: nobody listens there
            else:
                raise KvmpoolError(f"{unix_path}: another server is listening there")
            finally:
                probe.close()
        old = os.umask(0o177)
        try:
            return UnixServer(unix_path, handler)
        finally:
            os.umask(old)
    server_class: type[TCPServer] = TCPServer
    if ":" in host:
        server_class = type("TCP6Server", (TCPServer,), {"address_family": socket.AF_INET6})
    try:
        return server_class((host, port), handler)
    except OSError as err:
        raise KvmpoolError(f"cannot listen on {host}:{port}: {err.strerror}",
                           hint="choose another address with --listen ADDR:PORT") from None


def log_to_stderr(line: str) -> None:
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()


