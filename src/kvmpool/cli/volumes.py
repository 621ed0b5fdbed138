"""vol-* commands, with virsh's options and output."""

from __future__ import annotations

import click

from kvmpool import xml
from kvmpool.backends.base import CreateOptions
from kvmpool.cli.main import Session, cli, failing, json_option, pass_session, warn
from kvmpool.cli.output import emit_json, info_lines, size, table
from kvmpool.cli.virsh import command
from kvmpool.errors import InvalidArgument
from kvmpool.model import VolumeDef
from kvmpool.units import parse_size
from kvmpool.views import backing_volume, vol_allocation, vol_json, vol_xml


@command(cli, "vol-create-as", "pool", "name", "capacity",
         help="Create a volume from a set of arguments.")
@click.option("--pool", required=True, help="Pool name or uuid.")
@click.option("--name", required=True, help="Name of the volume.")
@click.option("--capacity", required=True, help="Size, e.g. 100M, 10G (scaled integer).")
@click.option("--allocation", help="Initial allocation (scaled integer).")
@click.option("--format", "fmt", help="raw, qcow2, qcow, qed, vmdk, vpc, vdi, vhdx, dir.")
@click.option("--backing-vol", help="Backing volume (name in the pool, or path).")
@click.option("--backing-vol-format", help="Format of the backing volume.")
@click.option("--prealloc-metadata", is_flag=True, help="Preallocate qcow2 metadata.")
@click.option("--print-xml", is_flag=True, help="Print the XML, create nothing.")
@json_option
@pass_session
def vol_create_as(session: Session, pool: str, name: str, capacity: str, allocation: str | None,
                  fmt: str | None, backing_vol: str | None, backing_vol_format: str | None,
                  prealloc_metadata: bool, print_xml: bool, as_json: bool) -> None:
    cap = parse_size(capacity)
    alloc = parse_size(allocation) if allocation is not None else None
    backing, backing_fmt = backing_vol, backing_vol_format
    if backing_vol and not print_xml:
        with failing(f"Failed to create vol {name}"):
            backing, probed = backing_volume(session.manager, pool, backing_vol)
            # Unlike virsh (which writes "raw" here), take the format kvmpool's probe found
            # in the volume the admin named; a guest-written header is never followed further.
            backing_fmt = backing_fmt or probed
    doc = vol_xml(name, cap, alloc, fmt, backing, backing_fmt)
    if print_xml:
        click.echo(doc, nl=False)
        return session.end()
    with failing(f"Failed to create vol {name}"):
        rec = session.manager.record(pool)
        vol = xml.parse_volume(doc, rec.current)
        made = session.manager.create_volume(
            rec, vol, CreateOptions(prealloc_metadata=prealloc_metadata))
    if as_json:
        return emit_json(made)
    session.say(f"Vol {name} created")
    session.end()


@command(cli, "vol-create", "pool", "file", help="Create a volume from an XML file.")
@click.option("--pool", required=True)
@click.option("--file", required=True)
@click.option("--prealloc-metadata", is_flag=True)
@json_option
@pass_session
def vol_create(session: Session, pool: str, file: str, prealloc_metadata: bool,
               as_json: bool) -> None:
    with failing(f"Failed to create vol from {file}"):
        try:
            with open(file, "rb") as f:
                data = f.read()
        except OSError as err:
            raise InvalidArgument(f"cannot read {file}: {err.strerror}") from None
        rec = session.manager.record(pool)
        vol = xml.parse_volume(data, rec.current)
        made = session.manager.create_volume(
            rec, vol, CreateOptions(prealloc_metadata=prealloc_metadata))
    if as_json:
        return emit_json(made)
    session.say(f"Vol {made.name} created from {file}")
    session.end()


@command(cli, "vol-delete", "vol", "pool", help="Delete a volume.")
@click.option("--vol", required=True, help="Volume name, key or path.")
@click.option("--pool", help="Pool name or uuid.")
@click.option("--delete-snapshots", is_flag=True, help="Delete the volume's snapshots too.")
@pass_session
def vol_delete(session: Session, vol: str, pool: str | None, delete_snapshots: bool) -> None:
    with failing(f"Failed to delete vol {vol}"):
        session.manager.delete_volume(vol, pool, delete_snapshots=delete_snapshots)
    session.say(f"Vol {vol} deleted")
    session.end()


@command(cli, "vol-list", "pool", help="List the volumes of a pool.")
@click.option("--pool", required=True)
@click.option("--details", is_flag=True, help="Type, capacity and allocation too.")
@json_option
@pass_session
def vol_list(session: Session, pool: str, details: bool, as_json: bool) -> None:
    with failing(f"Failed to list volumes of pool {pool}"):
        _, vols = session.manager.volumes(pool, details=details or as_json)
    if as_json:
        return emit_json([vol_json(v) for v in vols])
    for v in vols:
        if v.problem:
            warn(f"volume '{v.name}' looks damaged: {v.problem}")
    if details:
        header = ["Name", "Path", "Type", "Capacity", "Allocation"]
        rows = [[v.name, v.target.path or "", v.type.value, size(v.capacity or 0, False),
                 size(vol_allocation(v), False)] for v in vols]
    else:
        header = ["Name", "Path"]
        rows = [[v.name, v.target.path or ""] for v in vols]
    click.echo(table(header, rows, quiet=session.quiet), nl=False)
    session.end()


def _find(session: Session, vol: str, pool: str | None) -> VolumeDef:
    with failing(f"failed to get vol '{vol}'"):
        return session.manager.volume(vol, pool)[1]


@command(cli, "vol-info", "vol", "pool", help="A volume's type and sizes.")
@click.option("--vol", required=True)
@click.option("--pool")
@click.option("--bytes", "as_bytes", is_flag=True)
@click.option("--physical", is_flag=True, help="Show the physical size instead of allocation.")
@json_option
@pass_session
def vol_info(session: Session, vol: str, pool: str | None, as_bytes: bool, physical: bool,
             as_json: bool) -> None:
    v = _find(session, vol, pool)
    if as_json:
        return emit_json(vol_json(v))
    if v.problem:
        warn(f"volume '{v.name}' looks damaged: {v.problem}")
    suffix = " bytes" if as_bytes else ""
    last = ("Physical", size(v.physical, as_bytes, suffix)) if physical else (
        "Allocation", size(vol_allocation(v), as_bytes, suffix))
    click.echo(info_lines([("Name", v.name), ("Type", v.type.value),
                           ("Capacity", size(v.capacity or 0, as_bytes, suffix)), last]),
               nl=False)
    session.end()


@command(cli, "vol-dumpxml", "vol", "pool", help="A volume's XML.")
@click.option("--vol", required=True)
@click.option("--pool")
@json_option
@pass_session
def vol_dumpxml(session: Session, vol: str, pool: str | None, as_json: bool) -> None:
    with failing(f"failed to get vol '{vol}'"):
        rec, v = session.manager.volume(vol, pool)
    if as_json:
        return emit_json(v)
    click.echo(xml.format_volume(v, rec.current.type), nl=False)
    session.end()


def _single(name: str, help_text: str, field: str, with_pool: bool = True) -> None:
    @command(cli, name, "vol", *(("pool",) if with_pool else ()), help=help_text)
    @click.option("--vol", required=True, help="Volume name, key or path.")
    @click.option("--pool", help="Pool name or uuid.", hidden=not with_pool)
    @json_option
    @pass_session
    def run(session: Session, vol: str, pool: str | None, as_json: bool) -> None:
        v = _find(session, vol, pool)
        value = {"path": v.target.path, "key": v.key, "name": v.name}[field]
        if as_json:
            return emit_json({field: value})
        click.echo(value)
        session.end()


_single("vol-path", "A volume's path.", "path")
_single("vol-key", "A volume's key.", "key")
_single("vol-name", "A volume's name, from its key or path.", "name", with_pool=False)


@command(cli, "vol-pool", "vol", help="The pool holding a volume (given by key or path).")
@click.option("--vol", required=True)
@click.option("--uuid", "show_uuid", is_flag=True, help="Print the pool's UUID.")
@json_option
@pass_session
def vol_pool(session: Session, vol: str, show_uuid: bool, as_json: bool) -> None:
    with failing(f"failed to get vol '{vol}'"):
        rec, _ = session.manager.volume(vol)
    if as_json:
        return emit_json({"name": rec.name, "uuid": rec.uuid})
    click.echo(rec.uuid if show_uuid else rec.name)
    session.end()
