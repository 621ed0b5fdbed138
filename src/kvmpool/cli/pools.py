"""pool-* commands, with virsh's options and output."""

from __future__ import annotations

import os
import subprocess
import tempfile

import click

from kvmpool import caps, xml
from kvmpool.backends.base import Overwrite
from kvmpool.cli.main import Session, cli, failing, json_option, pass_session
from kvmpool.cli.output import emit_json, info_lines, size, table
from kvmpool.cli.virsh import command
from kvmpool.errors import InvalidArgument, KvmpoolError
from kvmpool.model import PoolType
from kvmpool.views import pool_json, pool_state, pool_xml, yes_no


def overwrite_choice(overwrite: bool, no_overwrite: bool) -> Overwrite:
    if overwrite and no_overwrite:
        raise InvalidArgument("--overwrite and --no-overwrite are mutually exclusive")
    if overwrite:
        return Overwrite.OVERWRITE
    return Overwrite.NO_OVERWRITE if no_overwrite else Overwrite.DEFAULT


# ------------------------------------------------------------------ define / create


def source_options(f: click.decorators.FC) -> click.decorators.FC:
    opts = [
        click.option("--print-xml", is_flag=True, help="Print the XML, define nothing."),
        click.option("--name", required=True, help="Name of the pool."),
        click.option("--type", "pool_type", required=True, help="Type of the pool."),
        click.option("--source-host", help="Source host (name or address)."),
        click.option("--source-port", help="Port on the source host."),
        click.option("--source-path", help="Source path (netfs export, gluster dir)."),
        click.option("--source-dev", multiple=True, help="Source device (repeatable)."),
        click.option("--source-name", help="Source name (volume group, rbd pool...)."),
        click.option("--target", help="Target directory (default for dir: DATA/<name>)."),
        click.option("--source-format", help="Format of the source."),
        click.option("--auth-type", help="chap or ceph."),
        click.option("--auth-username"),
        click.option("--secret-usage"),
        click.option("--secret-uuid"),
        click.option("--adapter-name", help="scsi_host adapter name."),
        click.option("--adapter-wwnn"),
        click.option("--adapter-wwpn"),
        click.option("--adapter-parent"),
        click.option("--adapter-parent-wwnn"),
        click.option("--adapter-parent-wwpn"),
        click.option("--adapter-parent-fabric-wwn"),
        click.option("--source-protocol-ver", help="NFS protocol version."),
        click.option("--source-initiator", help="iSCSI initiator IQN."),
        click.option("--thin-pool", help="logical: make volumes thin LVs of this thin pool "
                     "(pool-build creates it). A kvmpool extension."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@command(cli, "pool-define-as", "name", "type", "source-host", "source-path", "source-dev",
         "source-name", "target", help="Define a pool from a set of arguments.")
@source_options
@pass_session
def pool_define_as(session: Session, /, **o: object) -> None:
    doc = pool_xml(session.paths.data, o)
    if o["print_xml"]:
        click.echo(doc, nl=False)
        return session.end()
    with failing(f"Failed to define pool {o['name']}"):
        session.manager.define(xml.parse_pool(doc))
    session.say(f"Pool {o['name']} defined")
    session.end()


@command(cli, "pool-create-as", "name", "type", "source-host", "source-path", "source-dev",
         "source-name", "target", help="Create (define and start) a transient pool.")
@source_options
@click.option("--build", "do_build", is_flag=True, help="Build the pool first.")
@click.option("--overwrite", is_flag=True)
@click.option("--no-overwrite", is_flag=True)
@pass_session
def pool_create_as(session: Session, /, do_build: bool, overwrite: bool, no_overwrite: bool,
                   **o: object) -> None:
    doc = pool_xml(session.paths.data, o)
    if o["print_xml"]:
        click.echo(doc, nl=False)
        return session.end()
    with failing(f"Failed to create pool {o['name']}"):
        build = _start_build(do_build, overwrite, no_overwrite)
        session.manager.create(xml.parse_pool(doc), build=build)
    session.say(f"Pool {o['name']} created")
    session.end()


def _start_build(do_build: bool, overwrite: bool, no_overwrite: bool) -> Overwrite | None:
    if not (do_build or overwrite or no_overwrite):
        return None
    return overwrite_choice(overwrite, no_overwrite)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise InvalidArgument(f"cannot read {path}: {err.strerror}") from None


@command(cli, "pool-define", "file", help="Define (but don't start) a pool from an XML file.")
@click.option("--file", required=True, help="File with the pool XML.")
@click.option("--validate", is_flag=True, help="Validate against libvirt's schema first.")
@pass_session
def pool_define(session: Session, file: str, validate: bool) -> None:
    with failing(f"Failed to define pool from {file}"):
        data = _read(file)
        if validate:
            xml.validate(data.decode("utf-8", "replace"), "pool")
        pool = session.manager.define(xml.parse_pool(data))
    session.say(f"Pool {pool.name} defined from {file}")
    session.end()


@command(cli, "pool-create", "file", help="Create (start) a transient pool from an XML file.")
@click.option("--file", required=True)
@click.option("--build", "do_build", is_flag=True)
@click.option("--overwrite", is_flag=True)
@click.option("--no-overwrite", is_flag=True)
@pass_session
def pool_create(session: Session, file: str, do_build: bool, overwrite: bool,
                no_overwrite: bool) -> None:
    with failing(f"Failed to create pool from {file}"):
        pool = session.manager.create(xml.parse_pool(_read(file)),
                                      build=_start_build(do_build, overwrite, no_overwrite))
    session.say(f"Pool {pool.name} created from {file}")
    session.end()


# ------------------------------------------------------------------ lifecycle


@command(cli, "pool-build", "pool", help="Build a pool (make its directory, label, VG...).")
@click.option("--pool", required=True, help="Pool name or uuid.")
@click.option("--overwrite", is_flag=True, help="Overwrite any existing data.")
@click.option("--no-overwrite", is_flag=True, help="Refuse to overwrite existing data.")
@pass_session
def pool_build(session: Session, pool: str, overwrite: bool, no_overwrite: bool) -> None:
    with failing(f"Failed to build pool {pool}"):
        session.manager.build(pool, overwrite_choice(overwrite, no_overwrite))
    session.say(f"Pool {pool} built")
    session.end()


@command(cli, "pool-start", "pool", help="Start a (previously defined) inactive pool.")
@click.option("--pool", required=True)
@click.option("--build", "do_build", is_flag=True, help="Build the pool before starting it.")
@click.option("--overwrite", is_flag=True)
@click.option("--no-overwrite", is_flag=True)
@pass_session
def pool_start(session: Session, pool: str, do_build: bool, overwrite: bool,
               no_overwrite: bool) -> None:
    with failing(f"Failed to start pool {pool}"):
        session.manager.start(pool, build=_start_build(do_build, overwrite, no_overwrite))
    session.say(f"Pool {pool} started")
    session.end()


def _simple(name: str, verb: str, done: str, help_text: str) -> None:
    @command(cli, name, "pool", help=help_text)
    @click.option("--pool", required=True, help="Pool name or uuid.")
    @pass_session
    def run(session: Session, pool: str) -> None:
        with failing(f"Failed to {verb} pool {pool}"):
            getattr(session.manager, verb)(pool)
        session.say(f"Pool {pool} {done}")
        session.end()


_simple("pool-destroy", "destroy", "destroyed", "Stop a pool; its data is untouched.")
_simple("pool-delete", "delete", "deleted", "Delete a pool's storage (its directory, VG...).")
_simple("pool-refresh", "refresh", "refreshed", "Re-read a pool's storage.")


@command(cli, "pool-undefine", "pool", help="Forget an inactive pool's definition.")
@click.option("--pool", required=True)
@pass_session
def pool_undefine(session: Session, pool: str) -> None:
    with failing(f"Failed to undefine pool {pool}"):
        session.manager.undefine(pool)
    session.say(f"Pool {pool} has been undefined")
    session.end()


@command(cli, "pool-autostart", "pool", help="Start a pool whenever kvmpool starts pools.")
@click.option("--pool", required=True)
@click.option("--disable", is_flag=True, help="Do not autostart it any more.")
@pass_session
def pool_autostart(session: Session, pool: str, disable: bool) -> None:
    verb = "unmark" if disable else "mark"
    with failing(f"failed to {verb} pool {pool} as autostarted"):
        session.manager.set_autostart(pool, not disable)
    session.say(f"Pool {pool} {verb}ed as autostarted")
    session.end()


# ------------------------------------------------------------------ reading


@command(cli, "pool-list", help="List pools (active ones unless --all or --inactive).")
@click.option("--inactive", is_flag=True)
@click.option("--all", "show_all", is_flag=True)
@click.option("--transient", is_flag=True)
@click.option("--persistent", is_flag=True)
@click.option("--autostart", is_flag=True)
@click.option("--no-autostart", is_flag=True)
@click.option("--type", "types", help="Comma-separated pool types.")
@click.option("--details", is_flag=True)
@click.option("--uuid", "uuid_only", is_flag=True, help="Only UUIDs.")
@click.option("--name", "name_only", is_flag=True, help="Only names.")
@json_option
@pass_session
def pool_list(session: Session, inactive: bool, show_all: bool, transient: bool,
              persistent: bool, autostart: bool, no_autostart: bool, types: str | None,
              details: bool, uuid_only: bool, name_only: bool, as_json: bool) -> None:
    recs = session.manager.records()
    if not (inactive or show_all):
        recs = [r for r in recs if r.active]
    elif inactive and not show_all:
        recs = [r for r in recs if not r.active]
    if persistent != transient:
        recs = [r for r in recs if r.persistent == persistent]
    if autostart != no_autostart:
        recs = [r for r in recs if r.autostart == autostart]
    if types:
        wanted = {t.strip() for t in types.split(",") if t.strip()}
        unknown = wanted - {t.value for t in PoolType}
        if unknown:
            raise InvalidArgument(f"unknown pool type '{sorted(unknown)[0]}'")
        recs = [r for r in recs if r.current.type in wanted]
    sized = {r.uuid: session.manager.live_def(r) for r in recs if r.active} if (
        details or as_json) else {}
    if as_json:
        emit_json([pool_json(r, sized.get(r.uuid)) for r in recs])
        return
    if uuid_only or name_only:
        for r in recs:
            if uuid_only and name_only:
                click.echo(f"{r.uuid:<36} {r.name:<20}")
            elif uuid_only:
                click.echo(f"{r.uuid:<36}")
            else:
                click.echo(f"{r.name:<20}")
        return session.end()
    if details:
        header = ["Name", "State", "Autostart", "Persistent", "Capacity", "Allocation",
                  "Available"]
        rows = []
        for r in recs:
            live = sized.get(r.uuid)
            sizes = ([size(live.capacity, False), size(live.allocation, False),
                      size(live.available, False)] if live else ["-", "-", "-"])
            rows.append([r.name, pool_state(r, True), yes_no(r.autostart), yes_no(r.persistent),
                         *sizes])
    else:
        header = ["Name", "State", "Autostart"]
        rows = [[r.name, pool_state(r, False), yes_no(r.autostart)] for r in recs]
    click.echo(table(header, rows, quiet=session.quiet), nl=False)
    session.end()


@command(cli, "pool-info", "pool", help="Show a pool's state and sizes.")
@click.option("--pool", required=True)
@click.option("--bytes", "as_bytes", is_flag=True, help="Sizes in bytes.")
@json_option
@pass_session
def pool_info(session: Session, pool: str, as_bytes: bool, as_json: bool) -> None:
    with failing(f"failed to get pool '{pool}'"):
        rec = session.manager.record(pool)
        live = session.manager.live_def(rec) if rec.active else None
    if as_json:
        emit_json(pool_json(rec, live))
        return
    pairs = [("Name", rec.name), ("UUID", rec.uuid), ("State", pool_state(rec, True)),
             ("Persistent", yes_no(rec.persistent)), ("Autostart", yes_no(rec.autostart))]
    if live is not None:
        pairs += [("Capacity", size(live.capacity, as_bytes)),
                  ("Allocation", size(live.allocation, as_bytes)),
                  ("Available", size(live.available, as_bytes))]
        if live.thin is not None:  # kvmpool's addition for thin-bound logical pools
            pairs += [("Thin pool", live.thin_pool or ""),
                      ("Provisioned", size(live.thin.provisioned, as_bytes)),
                      ("Thin used", size(live.thin.data_used, as_bytes)),
                      ("Thin data", f"{live.thin.data_percent:.2f}%"),
                      ("Thin metadata", f"{live.thin.metadata_percent:.2f}%")]
    click.echo(info_lines(pairs), nl=False)
    session.end()


@command(cli, "pool-dumpxml", "pool", help="Print a pool's XML.")
@click.option("--pool", required=True)
@click.option("--inactive", is_flag=True, help="The definition used at next start.")
@json_option
@pass_session
def pool_dumpxml(session: Session, pool: str, inactive: bool, as_json: bool) -> None:
    with failing(f"failed to get pool '{pool}'"):
        doc = session.manager.dumpxml(pool, inactive=inactive)
    if as_json:
        emit_json(xml.parse_pool(doc))
        return
    click.echo(doc, nl=False)
    session.end()


@command(cli, "pool-name", "pool", help="Name of the pool with this UUID.")
@click.option("--pool", required=True)
@json_option
@pass_session
def pool_name(session: Session, pool: str, as_json: bool) -> None:
    with failing(f"failed to get pool '{pool}'"):
        rec = session.manager.record(pool)
    if as_json:
        return emit_json({"name": rec.name})
    click.echo(rec.name)
    session.end()


@command(cli, "pool-uuid", "pool", help="UUID of the pool with this name.")
@click.option("--pool", required=True)
@json_option
@pass_session
def pool_uuid(session: Session, pool: str, as_json: bool) -> None:
    with failing(f"failed to get pool '{pool}'"):
        rec = session.manager.record(pool)
    if as_json:
        return emit_json({"uuid": rec.uuid})
    click.echo(rec.uuid)
    session.end()


@command(cli, "pool-edit", "pool", help="Edit a pool's XML in $EDITOR; saved only if valid.")
@click.option("--pool", required=True)
@pass_session
def pool_edit(session: Session, pool: str) -> None:
    with failing(f"Failed to edit pool {pool}"):
        before = session.manager.dumpxml(pool, inactive=True)
        fd, tmp = tempfile.mkstemp(prefix="kvmpool-edit-", suffix=".xml")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(before)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        rc = subprocess.call([*editor.split(), tmp])
        if rc != 0:
            raise KvmpoolError(f"editor '{editor}' exited with {rc}; nothing was changed",
                               hint=f"your edit is kept in {tmp}")
        with open(tmp, encoding="utf-8") as f:
            after = f.read()
        if after == before:
            os.unlink(tmp)
            session.say(f"Pool {pool} XML configuration not changed.")
            return session.end()
        try:
            new = xml.parse_pool(after)
            session.manager.define(new)
        except KvmpoolError as err:
            err.hint = f"nothing was changed; your edit is kept in {tmp}"
            raise
        os.unlink(tmp)
    session.say(f"Pool {new.name} XML configuration edited.")
    session.end()


@command(cli, "pool-capabilities", help="Which pool types and volume formats kvmpool supports.")
@json_option
@pass_session
def pool_capabilities(session: Session, as_json: bool) -> None:
    if as_json:
        emit_json([{"type": t.value, "supported": caps.caps(t).has_backend,
                    "volume_formats": list(caps.caps(t).vol_formats)} for t in PoolType])
        return
    lines = ["<storagepoolCapabilities>"]
    for t in PoolType:
        c = caps.caps(t)
        lines.append(f"  <pool type='{t.value}' supported='{yes_no(c.has_backend)}'>")
        if c.vol_formats:
            lines += ["    <volOptions>", f"      <defaultFormat type='{c.vol_formats[0]}'/>",
                      "      <enum name='targetFormatType'>"]
            lines += [f"        <value>{v}</value>" for v in c.vol_formats]
            lines += ["      </enum>", "    </volOptions>"]
        lines.append("  </pool>")
    lines.append("</storagepoolCapabilities>")
    click.echo("\n".join(lines))
    session.end()


@command(cli, "pool-import-libvirt", "dir",
         help="Adopt an existing libvirt host's pool definitions and autostart marks.")
@click.option("--dir", "directory", default="/etc/libvirt/storage", show_default=True)
@json_option
@pass_session
def pool_import_libvirt(session: Session, directory: str, as_json: bool) -> None:
    with failing(f"Failed to import pools from {directory}"):
        imported = session.manager.import_libvirt(directory)
    if as_json:
        return emit_json([{"name": p.name, "uuid": p.uuid, "autostart": a}
                          for p, a in imported])
    for pool, auto in imported:
        session.say(f"Pool {pool.name} imported" + (" (autostart)" if auto else ""))
    if not imported:
        session.say("No new pools to import")
    session.end()
