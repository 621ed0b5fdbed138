"""find-storage-pool-sources and find-storage-pool-sources-as, with virsh's output."""

from __future__ import annotations

from typing import Any

import click

from kvmpool import discovery, xml
from kvmpool.cli.main import Session, cli, failing
from kvmpool.cli.output import emit_json, jsonable
from kvmpool.cli.virsh import command
from kvmpool.errors import InvalidArgument
from kvmpool.model import PoolSource, PoolType, SourceHost
from kvmpool.xml._doc import parse_document
from kvmpool.xml.source import parse_source

pass_session = click.make_pass_decorator(Session)


def _pool_type(name: str) -> PoolType:
    try:
        return PoolType(name)
    except ValueError:
        raise InvalidArgument(f"unknown storage pool type '{name}'") from None


def _answer(session: Session, pool_type: PoolType, spec: PoolSource, as_json: bool) -> None:
    with failing(f"Failed to find any {pool_type} pool sources"):
        sources = discovery.find_sources(pool_type, spec, session.runner)
    if as_json:
        emit_json([_plain(s) for s in sources])
        return
    click.echo(xml.format_sources(sources, pool_type), nl=False)
    session.end()


def _plain(source: PoolSource) -> dict[str, Any]:
    """A source for --json: only the parts it has (hosts, devices, dir, name, format ...)."""
    out: dict[str, Any] = {}
    for key, value in jsonable(source).items():
        if value not in (None, [], {}):
            out[key] = value
    if "hosts" in out:
        out["hosts"] = [{k: v for k, v in h.items() if v is not None} for h in out["hosts"]]
    if "devices" in out:
        out["devices"] = [{"path": d["path"]} for d in out["devices"]]
    return out


TYPES_HELP = "Pool type: netfs (--host), logical, iscsi, iscsi-direct (--host, --initiator)."


@command(cli, "find-storage-pool-sources-as", "type", "host", "port", "initiator",
         help="Find the pool sources a host offers (NFS: its exports; iSCSI: its targets; "
              "logical: the volume groups here).")
@click.option("--type", "type_name", required=True, help=TYPES_HELP)
@click.option("--host", help="Host to ask.")
@click.option("--port", type=int, help="Port on the host (iSCSI: 3260).")
@click.option("--initiator", help="Initiator IQN to use.")
@click.option("--json", "as_json", is_flag=True, help="Print the sources as JSON.")
@pass_session
def find_sources_as(session: Session, type_name: str, host: str | None, port: int | None,
                    initiator: str | None, as_json: bool) -> None:
    pool_type = _pool_type(type_name)
    spec = PoolSource(hosts=(SourceHost(host, port),) if host else (),
                      initiator_iqn=initiator)
    _answer(session, pool_type, spec, as_json)


@command(cli, "find-storage-pool-sources", "type", "srcSpec",
         help="Find pool sources; --srcSpec FILE holds a <source> document.")
@click.option("--type", "type_name", required=True, help=TYPES_HELP)
@click.option("--srcSpec", "src_spec", help="File with a <source> element.")
@click.option("--json", "as_json", is_flag=True, help="Print the sources as JSON.")
@pass_session
def find_sources(session: Session, type_name: str, src_spec: str | None,
                 as_json: bool) -> None:
    pool_type = _pool_type(type_name)
    spec = PoolSource()
    if src_spec is not None:
        with failing(f"Failed to find any {pool_type} pool sources"):
            try:
                with open(src_spec, "rb") as f:
                    data = f.read()
            except OSError as err:
                raise InvalidArgument(f"cannot read {src_spec}: {err.strerror}") from None
            spec = parse_source(parse_document(data, "source"), pool_type)
    _answer(session, pool_type, spec, as_json)
