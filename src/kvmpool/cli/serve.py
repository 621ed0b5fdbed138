"""``kvmpool serve``: the REST API, the web page and /metrics (see ``kvmpool.service``)."""

from __future__ import annotations

import click

from kvmpool.cli.main import Session, cli, pass_session


@cli.command("serve")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="ADDR:PORT",
              help="Address to listen on; any non-loopback address requires the token.")
@click.option("--socket", "unix_path", metavar="PATH",
              help="Listen on a unix socket (mode 0600) instead of TCP.")
@click.option("--allow-host", multiple=True, metavar="NAME",
              help="Also accept requests whose Host header names NAME (repeatable).")
@pass_session
def serve_command(session: Session, listen: str, unix_path: str | None,
                  allow_host: tuple[str, ...]) -> None:
    """Serve the REST API, the web page and /metrics until SIGTERM or Ctrl-C."""
    from kvmpool.service import serve

    serve(session.paths, listen=listen, unix_path=unix_path, allow_hosts=allow_host,
          quiet=session.quiet, dry_run=session.runner.dry_run)
