"""``kvmpool``: the entry point, global options, and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from kvmpool import __version__
from kvmpool.errors import HostCommandFailed, KvmpoolError
from kvmpool.host.run import Runner
from kvmpool.paths import Paths, default_paths

if TYPE_CHECKING:
    from kvmpool.manager import Manager

# The module under kvmpool.cli that defines each command. A command line imports only
# its command's module (and what that needs), so a short command starts fast; --help
# imports them all. tests/unit/test_cli_lazy.py checks this table against the modules.
COMMANDS: dict[str, str] = {
    **dict.fromkeys((
        "pool-autostart", "pool-build", "pool-capabilities", "pool-create", "pool-create-as",
        "pool-define", "pool-define-as", "pool-delete", "pool-destroy", "pool-dumpxml",
        "pool-edit", "pool-import-libvirt", "pool-info", "pool-list", "pool-name",
        "pool-refresh", "pool-start", "pool-undefine", "pool-uuid"), "pools"),
    **dict.fromkeys((
        "vol-create", "vol-create-as", "vol-delete", "vol-dumpxml", "vol-info", "vol-key",
        "vol-list", "vol-name", "vol-path", "vol-pool"), "volumes"),
    **dict.fromkeys((
        "vol-clone", "vol-create-from", "vol-download", "vol-resize", "vol-snapshot-create",
        "vol-snapshot-delete", "vol-snapshot-list", "vol-snapshot-revert", "vol-upload",
        "vol-wipe"), "volume_ops"),
    **dict.fromkeys((
        "secret-define", "secret-dumpxml", "secret-get-value", "secret-list",
        "secret-set-value", "secret-undefine"), "secrets"),
    **dict.fromkeys(("find-storage-pool-sources", "find-storage-pool-sources-as"),
                    "discovery"),
    "serve": "serve",
    "daemon": "daemon",
}


class LazyGroup(click.Group):
    """A group whose commands are imported from their module when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"kvmpool.cli.{module}")
        return self.commands.get(cmd_name)


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
            from kvmpool.manager import Manager

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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


pass_session = click.make_pass_decorator(Session)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def main(argv: Sequence[str] | None = None) -> int:
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
