"""secret-* commands, with virsh's options and output.

A secret value never travels as a command-line argument if kvmpool can help it: other users
see every process's arguments (``ps``, ``/proc/PID/cmdline``). ``secret-set-value`` reads it
from ``--file F``, from stdin (``--file -``) or from the terminal (``--interactive``). virsh's
positional base64 form is accepted for compatibility, with virsh's own warning.
"""

from __future__ import annotations

import base64
import getpass
import sys

import click

from kvmpool.cli.main import Session, cli, failing, warn
from kvmpool.cli.output import emit_json, table
from kvmpool.cli.virsh import command
from kvmpool.errors import InvalidArgument
from kvmpool.secrets import MAX_VALUE, SecretStore, decode_value, format_secret, parse_secret

pass_session = click.make_pass_decorator(Session)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _store(session: Session) -> SecretStore:
    return SecretStore(session.paths)


def _read_input(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read(MAX_VALUE + 1)
        with open(path, "rb") as f:
            return f.read(MAX_VALUE + 1)
    except OSError as err:
        raise InvalidArgument(f"cannot read {path}: {err.strerror}") from None


@command(cli, "secret-define", "file", help="Define (or redefine) a secret from an XML file.")
@click.option("--file", required=True, help="File with the secret XML.")
@click.option("--validate", is_flag=True, help="Accepted for virsh compatibility.")
@pass_session
def secret_define(session: Session, file: str, validate: bool) -> None:
    with failing(f"Failed to set attributes from {file}"):
        secret = parse_secret(_read_input(file))
        if session.runner.change(f"define secret {secret.uuid} in {session.paths.secrets}"):
            _store(session).define(secret)
    session.say(f"Secret {secret.uuid} created")
    session.end()


@command(cli, "secret-set-value", "secret", "base64",
         help="Set a secret's value: from --file F (base64, or raw with --plain), from stdin "
              "with --file -, or typed with --interactive.")
@click.option("--secret", required=True, help="Secret UUID.")
@click.option("--file", "path", help="Read the value from this file ('-': stdin).")
@click.option("--plain", is_flag=True, help="The value is raw bytes, not base64.")
@click.option("--interactive", is_flag=True, help="Type the value (not echoed).")
@click.option("--base64", "value", hidden=True,
              help="The value itself: visible to every user of this host (ps); avoid.")
@pass_session
def secret_set_value(session: Session, secret: str, path: str | None, plain: bool,
                     interactive: bool, value: str | None) -> None:
    with failing("Failed to set secret value"):
        given = [x for x in (path is not None, interactive, value is not None) if x]
        if len(given) != 1:
            raise InvalidArgument("give exactly one of --file, --interactive or a base64 value",
                                  hint="kvmpool secret-set-value UUID --file FILE")
        if value is not None:
            warn("Passing secret value as command-line argument is insecure! "
                 "(other users can read it in the process list; use --file FILE or --file -)")
            data = value.encode("utf-8")
        elif interactive:
            data = getpass.getpass("Enter new value for secret:").encode("utf-8")
        else:
            assert path is not None
            data = _read_input(path)
        if len(data) > MAX_VALUE:
            raise InvalidArgument(f"secret value too long (more than {MAX_VALUE} bytes)")
        raw = data if plain else decode_value(data)
        store = _store(session)
        store.get(secret)  # a missing secret fails even in dry-run
        if session.runner.change(f"set the value of secret {secret}"):
            store.set_value(secret, raw)
    session.say("Secret value set")
    session.end()


@command(cli, "secret-get-value", "secret", help="Print a secret's value (base64).")
@click.option("--secret", required=True, help="Secret UUID.")
@click.option("--plain", is_flag=True, help="Print the raw bytes instead of base64.")
@pass_session
def secret_get_value(session: Session, secret: str, plain: bool) -> None:
    with failing(f"failed to get secret '{secret}'"):
        value = _store(session).get_value(secret)
    if plain:
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
        return
    click.echo(base64.b64encode(value).decode("ascii"))
    session.end()


@command(cli, "secret-list", help="List secrets.")
@click.option("--ephemeral", is_flag=True)
@click.option("--no-ephemeral", is_flag=True)
@click.option("--private", is_flag=True)
@click.option("--no-private", is_flag=True)
@json_option
@pass_session
def secret_list(session: Session, ephemeral: bool, no_ephemeral: bool, private: bool,
                no_private: bool, as_json: bool) -> None:
    secrets = _store(session).list()
    if ephemeral != no_ephemeral:
        secrets = [s for s in secrets if s.ephemeral == ephemeral]
    if private != no_private:
        secrets = [s for s in secrets if s.private == private]
    if as_json:
        emit_json(secrets)
        return
    click.echo(table(["UUID", "Usage"], [[s.uuid, s.usage] for s in secrets],
                     quiet=session.quiet), nl=False)
    session.end()


@command(cli, "secret-undefine", "secret", help="Forget a secret and its value.")
@click.option("--secret", required=True, help="Secret UUID.")
@pass_session
def secret_undefine(session: Session, secret: str) -> None:
    with failing(f"Failed to delete secret {secret}"):
        store = _store(session)
        found = store.get(secret)
        if session.runner.change(f"delete secret {found.uuid} and its value"):
            store.undefine(found.uuid)
    session.say(f"Secret {found.uuid} deleted")
    session.end()


@command(cli, "secret-dumpxml", "secret", help="Print a secret's XML (never its value).")
@click.option("--secret", required=True, help="Secret UUID.")
@pass_session
def secret_dumpxml(session: Session, secret: str) -> None:
    with failing(f"failed to get secret '{secret}'"):
        found = _store(session).get(secret)
    click.echo(format_secret(found), nl=False)
    session.end()
