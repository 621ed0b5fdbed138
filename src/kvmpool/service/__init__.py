"""``kvmpool serve``: a REST API, a web page and ``/metrics`` over the manager.

The service has no storage logic of its own: every route calls ``kvmpool.manager.Manager``
(a fresh one per request, as each CLI run makes one), builds XML with the CLI's own
builders and answers with the CLI's ``--json`` shapes. Modules:

- ``app``: the HTTP server (standard library ``ThreadingHTTPServer``; why, in its docstring),
  dispatch, errors as ``{"error", "hint"}`` with the error's ``http_status``, static files;
- ``routes_pools``, ``routes_volumes``, ``routes_more`` (secrets without values, source
  discovery): the route table, one function per route;
- ``call``: ``Call``/``Reply``/``Route``; ``schema``: request bodies, checked and described;
- ``jobs``: long operations in threads, with progress and cancel;
- ``auth``: the token, Host/Origin/CSRF checks; ``metrics``: Prometheus text;
- ``openapi``: the document at ``/api/openapi.json``, made from the route table;
- ``static/``: the page (plain HTML, CSS and JavaScript modules: ``util``, ``pools``,
  ``volumes``, ``jobs``, ``main``; no build step, nothing fetched from elsewhere).

See docs/service.md for the access rules, the API in short and the metrics.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from kvmpool.paths import Paths
from kvmpool.service.app import Service, log_to_stderr, make_server
from kvmpool.service.auth import Guard, is_loopback, load_token, token_path


def serve(paths: Paths, *, listen: str = "127.0.0.1:8080", unix_path: str | None = None,
          allow_hosts: tuple[str, ...] = (), quiet: bool = False, dry_run: bool = False,
          ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); then cancel jobs and close."""
    host, port = split_listen(listen)
    token = None
    if unix_path is None and not is_loopback(host):
        token = load_token(paths.config)
    guard = Guard(token, loopback_only=unix_path is None and is_loopback(host),
                  allowed_hosts=frozenset(h.lower() for h in allow_hosts))
    service = Service(paths, guard, log=(lambda _l: None) if quiet else log_to_stderr,
                      dry_run=dry_run)
    server = make_server(service, host=host, port=port, unix_path=unix_path)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _s, _f: stop.set())
    if unix_path is not None:
        where = f"unix:{unix_path}"
    else:
        bound = server.server_address
        assert isinstance(bound, tuple)
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
        where = f"http://{shown}:{bound[1]}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="kvmpool-serve", daemon=True)
    thread.start()
    log_to_stderr(f"kvmpool serve: listening on {where}"
                  + (f" (token required: {token_path(paths.config)})" if token else ""))
    if ready is not None:
        ready(where)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        service.close()
        server.server_close()
        if unix_path is not None and os.path.exists(unix_path):
            os.unlink(unix_path)
        log_to_stderr("kvmpool serve: stopped")


def split_listen(listen: str) -> tuple[str, int]:
    from kvmpool.errors import InvalidArgument

    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"--listen {listen}: expected ADDR:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)
