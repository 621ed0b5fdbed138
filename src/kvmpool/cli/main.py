"""``kvmpool``: the entry point, global options, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import click

from kvmpool import __version__
from kvmpool.errors import HostCommandFailed, KvmpoolError
from kvmpool.host.run import Runner
from kvmpool.manager import Manager
from kvmpool.paths import Paths, default_paths


@dataclass
class Session:
    """What every command gets: the manager and the global output switches."""

    paths: Paths
    runner: Runner
    quiet: bool = False
    debug: bool = False
    _manager: Manager | None = field(default=None, repr=False)

    @property
    def manager(self) -> Manager:
        if self._manager is None:
            self._manager = Manager(self.paths, self.runner, warn=warn)
        return self._manager

    def say(self, text: str) -> None:
        """A success message (``Pool x started``): suppressed by --quiet."""
        if not self.quiet:
            click.echo(f"dry run, nothing changed: {text}" if self.runner.dry_run else text)

    def end(self) -> None:
        """virsh prints one blank line after every command, unless --quiet."""
        if not self.quiet:
            click.echo("")


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@contextmanager
def failing(what: str) -> Iterator[None]:
    """Prefix any error from the block with virsh's context ("Failed to start pool x")."""
    try:
        yield
    except KvmpoolError as err:
        err.message = f"{what}: {err.message}"
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", "root", metavar="DIR", envvar="KVMPOOL_ROOT",
              help="Keep all of kvmpool's own files under DIR (also KVMPOOL_ROOT).")
@click.option("-q", "--quiet", is_flag=True, help="Only data: no messages, headers or blank line.")
@click.option("-d", "--debug", is_flag=True,
              help="On failure, also print the host commands run, their exit codes and stderr.")
@click.option("--dry-run", is_flag=True,
              help="Print every host command and file change instead of doing it.")
@click.version_option(__version__, "-v", "--version", prog_name="kvmpool")
@click.pass_context
def cli(ctx: click.Context, root: str | None, quiet: bool, debug: bool, dry_run: bool) -> None:
    """Manage KVM storage pools and volumes, the way virsh does and more."""
    runner = Runner(dry_run=dry_run, echo=click.echo)
    ctx.obj = Session(default_paths(root), runner, quiet=quiet, debug=debug)


def main(argv: Sequence[str] | None = None) -> int:
    # Register the commands (imported for their side effect on ``cli``).
    from kvmpool.cli import discovery, pools, secrets, serve, volume_ops, volumes  # noqa: F401

    args = list(sys.argv[1:] if argv is None else argv)
    ctx: click.Context | None = None
    try:
        with cli.make_context("kvmpool", args) as ctx:
            ctx.call_on_close(lambda: _close(ctx))
            cli.invoke(ctx)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.UsageError as err:
        where = f" (see: kvmpool {err.ctx.info_name} --help)" if err.ctx is not None else ""
        click.echo(f"error: {err.format_message()}{where}", err=True)
        return 1
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        return 1
    except click.Abort:
        click.echo("error: interrupted", err=True)
        return 130
    except KvmpoolError as err:
        line = f"error: {err.message}"
        if err.hint:
            line += f" (hint: {err.hint})"
        click.echo(line, err=True)
        session = ctx.obj if ctx is not None else None
        if isinstance(session, Session) and session.debug:
            _debug_dump(session.runner, err)
        return err.exit_code
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    return 0


def _close(ctx: click.Context) -> None:
    """End the remote connections (Ceph) the command opened."""
    session = ctx.obj
    if isinstance(session, Session) and session._manager is not None:
        session._manager.ctx.connections.close()


def _debug_dump(runner: Runner, err: KvmpoolError) -> None:
    for done in runner.history:
        click.echo(f"debug: ran {Runner.show(done.argv)} -> exit {done.returncode}", err=True)
        for line in done.stderr.splitlines():
            click.echo(f"debug:   stderr: {line}", err=True)
    if isinstance(err, HostCommandFailed) and not runner.history:
        click.echo(f"debug: {Runner.show(err.argv)} -> exit {err.returncode}", err=True)


if __name__ == "__main__":
    sys.exit(main())
