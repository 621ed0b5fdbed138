"""vol-clone, vol-create-from, vol-upload, vol-download, vol-wipe, vol-resize, snapshots."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import click

from kvmpool import xml
from kvmpool.backends.base import Reflink
from kvmpool.caps import WIPE_ALGORITHMS
from kvmpool.cli.main import Session, cli, failing, json_option, pass_session
from kvmpool.cli.output import emit_json, table
from kvmpool.cli.progress import Meter, meter
from kvmpool.cli.virsh import command
from kvmpool.errors import InvalidArgument
from kvmpool.units import parse_size


def reflink_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("--reflink", "reflink", flag_value=Reflink.AUTO, default=True,
                     help="Share extents where the file system can, else copy (default).")(f)
    f = click.option("--reflink-only", "reflink", flag_value=Reflink.ALWAYS,
                     help="Fail unless extents can be shared.")(f)
    f = click.option("--no-reflink", "reflink", flag_value=Reflink.NEVER,
                     help="Always copy the data.")(f)
    return f


@contextlib.contextmanager
def progress_for(session: Session, label: str, total: int) -> Iterator[Meter | None]:
    m = meter(label, total, session.quiet)
    try:
        yield m
    finally:
        if m is not None:
            m.close()


def _reflink(value: object) -> Reflink:
    return Reflink(str(value)) if value in {r.value for r in Reflink} else Reflink.AUTO


@command(cli, "vol-clone", "vol", "newname", "pool", help="Clone a volume within its pool.")
@click.option("--vol", required=True, help="Volume name, key or path.")
@click.option("--newname", required=True, help="Name of the clone.")
@click.option("--pool", help="Pool name or uuid.")
@click.option("--prealloc-metadata", is_flag=True)
@click.option("--print-xml", is_flag=True, help="Print the new volume's XML, clone nothing.")
@reflink_options
@json_option
@pass_session
def vol_clone(session: Session, vol: str, newname: str, pool: str | None,
              prealloc_metadata: bool, print_xml: bool, reflink: object, as_json: bool) -> None:
    with failing(f"Failed to clone vol from {vol}"):
        rec, src = session.manager.volume(vol, pool)
        if print_xml:
            doc = xml.format_volume(src, rec.current.type)
            click.echo(doc.replace(f"<name>{src.name}</name>", f"<name>{newname}</name>", 1),
                       nl=False)
            return session.end()
        with progress_for(session, f"cloning {src.name}", src.physical or 0) as m:
            made = session.manager.clone_volume(
                vol, newname, pool, reflink=_reflink(reflink),
                prealloc_metadata=prealloc_metadata, progress=m)
    if as_json:
        return emit_json(made)
    session.say(f"Vol {newname} cloned from {src.name}")
    session.end()


@command(cli, "vol-create-from", "pool", "file", "vol",
         help="Create a volume from an XML file, with the data of another volume.")
@click.option("--pool", required=True)
@click.option("--file", required=True, help="XML of the new volume.")
@click.option("--vol", required=True, help="Input volume (name, key or path).")
@click.option("--inputpool", help="Pool of the input volume (default: --pool).")
@click.option("--prealloc-metadata", is_flag=True)
@reflink_options
@json_option
@pass_session
def vol_create_from(session: Session, pool: str, file: str, vol: str, inputpool: str | None,
                    prealloc_metadata: bool, reflink: object, as_json: bool) -> None:
    with failing(f"Failed to create vol from {file}"):
        try:
            with open(file, "rb") as f:
                data = f.read()
        except OSError as err:
            raise InvalidArgument(f"cannot read {file}: {err.strerror}") from None
        rec = session.manager.record(pool)
        new = xml.parse_volume(data, rec.current, capacity_optional=True)
        _, src = session.manager.volume(vol, inputpool or pool)
        with progress_for(session, f"copying {src.name}", src.physical or 0) as m:
            made = session.manager.create_volume_from(
                pool, new, vol, inputpool, reflink=_reflink(reflink),
                prealloc_metadata=prealloc_metadata, progress=m)
    if as_json:
        return emit_json(made)
    session.say(f"Vol {made.name} created from input vol {src.name}")
    session.end()


def _sizes(offset: str | None, length: str | None) -> tuple[int, int | None]:
    return (parse_size(offset) if offset else 0), (parse_size(length) if length else None)


@command(cli, "vol-upload", "vol", "file", "pool",
         help="Write a file (or - for stdin) into a volume.")
@click.option("--vol", required=True)
@click.option("--file", required=True)
@click.option("--pool")
@click.option("--offset", help="Start at this byte of the volume.")
@click.option("--length", help="Write at most this many bytes.")
@click.option("--sparse", is_flag=True, help="Keep holes as holes.")
@pass_session
def vol_upload(session: Session, vol: str, file: str, pool: str | None, offset: str | None,
               length: str | None, sparse: bool) -> None:
    with failing(f"cannot upload to volume {vol}"):
        off, count = _sizes(offset, length)
        total = count or (os.path.getsize(file) if file != "-" and os.path.isfile(file) else 0)
        with progress_for(session, f"uploading to {vol}", total) as m:
            session.manager.upload(vol, pool, file, offset=off, length=count, sparse=sparse,
                                   progress=m)
    session.end()


@command(cli, "vol-download", "vol", "file", "pool",
         help="Copy a volume into a file (or - for stdout).")
@click.option("--vol", required=True)
@click.option("--file", required=True)
@click.option("--pool")
@click.option("--offset")
@click.option("--length")
@click.option("--sparse", is_flag=True, help="Keep holes as holes.")
@pass_session
def vol_download(session: Session, vol: str, file: str, pool: str | None, offset: str | None,
                 length: str | None, sparse: bool) -> None:
    with failing(f"cannot download from volume {vol}"):
        off, count = _sizes(offset, length)
        _, v = session.manager.volume(vol, pool)
        with progress_for(session, f"downloading {v.name}", count or v.physical or 0) as m:
            session.manager.download(vol, pool, file, offset=off, length=count, sparse=sparse,
                                     progress=m)
    if file != "-":
        session.end()


@command(cli, "vol-wipe", "vol", "pool", help="Wipe a volume's data (the volume stays).")
@click.option("--vol", required=True)
@click.option("--pool")
@click.option("--algorithm", default="zero", show_default=True,
              help="One of: " + ", ".join(WIPE_ALGORITHMS))
@pass_session
def vol_wipe(session: Session, vol: str, pool: str | None, algorithm: str) -> None:
    with failing(f"Failed to wipe vol {vol}"):
        if algorithm not in WIPE_ALGORITHMS:
            raise InvalidArgument(f"Unsupported algorithm '{algorithm}'")
        _, v = session.manager.volume(vol, pool)
        with progress_for(session, f"wiping {v.name}", v.physical or 0) as m:
            session.manager.wipe_volume(vol, pool, algorithm, progress=m)
    session.say(f"Vol {vol} wiped")
    session.end()


@command(cli, "vol-resize", "vol", "capacity", "pool", help="Change a volume's capacity.")
@click.option("--vol", required=True)
@click.option("--capacity", required=True, help="New size (or change, with --delta; - shrinks).")
@click.option("--pool")
@click.option("--allocate", is_flag=True, help="Allocate the new space (raw).")
@click.option("--delta", is_flag=True, help="Capacity is a change, not the new size.")
@click.option("--shrink", is_flag=True, help="Allow making the volume smaller.")
@pass_session
def vol_resize(session: Session, vol: str, capacity: str, pool: str | None, allocate: bool,
               delta: bool, shrink: bool) -> None:
    with failing(f"Failed to change size of volume '{vol}' to {capacity}"):
        negative = capacity.startswith("-")
        text = capacity[1:] if negative else capacity
        if negative and not shrink:
            raise InvalidArgument("negative size requires --shrink")
        size = parse_size(text)
        by = delta or negative
        session.manager.resize_volume(vol, pool, -size if negative else size, delta=by,
                                      shrink=shrink, allocate=allocate)
    how = "by" if by else "to"
    session.say(f"Size of volume '{vol}' successfully changed {how} {text}")
    session.end()


# ------------------------------------------------------------------ snapshots


@command(cli, "vol-snapshot-list", "vol", "pool", help="List a volume's snapshots.")
@click.option("--vol", required=True)
@click.option("--pool")
@json_option
@pass_session
def vol_snapshot_list(session: Session, vol: str, pool: str | None, as_json: bool) -> None:
    with failing(f"Failed to list snapshots of vol {vol}"):
        _, snaps = session.manager.snapshots(vol, pool)
    if as_json:
        return emit_json(snaps)
    rows = [[s.name, s.created or "-", s.origin or "-", "yes" if s.valid else "no (full)"]
            for s in snaps]
    click.echo(table(["Name", "Created", "Origin", "Valid"], rows, quiet=session.quiet),
               nl=False)
    session.end()


def _snapshot_verb(name: str, action: str, done: str, help_text: str) -> None:
    @command(cli, name, "vol", "snapshot", "pool", help=help_text)
    @click.option("--vol", required=True)
    @click.option("--snapshot", required=True, help="Snapshot name.")
    @click.option("--pool")
    @click.option("--size", hidden=action != "create",
                  help="Space for a classic LVM snapshot (default: a quarter of the volume).")
    @pass_session
    def run(session: Session, vol: str, snapshot: str, pool: str | None,
            size: str | None) -> None:
        with failing(f"Failed to {action} snapshot {snapshot} of vol {vol}"):
            if size is not None and action != "create":
                raise InvalidArgument("--size only applies to vol-snapshot-create")
            session.manager.snapshot(action, vol, pool, snapshot,
                                     parse_size(size) if size is not None else None)
        session.say(f"Snapshot {snapshot} of vol {vol} {done}")
        session.end()


_snapshot_verb("vol-snapshot-create", "create", "created", "Take a snapshot of a volume.")
_snapshot_verb("vol-snapshot-revert", "revert", "reverted",
               "Bring a volume back to a snapshot (later changes are lost).")
_snapshot_verb("vol-snapshot-delete", "delete", "deleted", "Delete a volume's snapshot.")
