"""``<pool>`` documents: parse with libvirt's rules, format byte for byte like libvirt.

Follows ``virStoragePoolDefParseXML`` and ``virStoragePoolDefFormat`` of libvirt 9.0
(behaviour only; the package docstring lists where kvmpool deliberately differs). The
``<source>`` part lives in :mod:`kvmpool.xml.source`.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import replace

from kvmpool.model import PoolDef, PoolSource, PoolTarget, PoolType
from kvmpool.xml._common import format_perms, parse_perms, parse_uuid, sanitize_path
from kvmpool.xml._doc import (
    Element,
    attr,
    fail,
    parse_document,
    prop_yes_no,
    xnode,
    xnodes,
    xstring,
)
from kvmpool.xml._writer import Writer, esc
from kvmpool.xml.ext import format_extensions, namespace_decl, parse_thin_pool
from kvmpool.xml.source import format_source, parse_source, validate_adapter
from kvmpool.xml.types import SourceNeeds, type_info

FS_NS = "http://libvirt.org/schemas/storagepool/fs/1.0"
RBD_NS = "http://libvirt.org/schemas/storagepool/rbd/1.0"


def _parse_cow(root: Element, pool_type: PoolType) -> bool | None:
    node = xnode(root, "./features/cow")
    if node is None:
        return None
    state = prop_yes_no(node, "state")
    if state is not None and pool_type not in (PoolType.FS, PoolType.DIR):
        raise fail("cow feature may only be used for 'fs' and 'dir' pools")
    return state


def _fs_mount_opts(root: Element, pool_type: PoolType) -> tuple[str, ...]:
    """The fs namespace (fs and netfs pools): extra ``mount -o`` options."""
    if pool_type not in (PoolType.FS, PoolType.NETFS):
        return ()
    opts = []
    for opt in xnodes(root, "./fs:mount_opts/fs:option", {"fs": FS_NS}):
        name = attr(opt, "name")
        if name is None:
            raise fail("no fs mount option name specified")
        opts.append(name)
    return tuple(opts)


def _rbd_config_opts(root: Element, pool_type: PoolType) -> tuple[tuple[str, str], ...]:
    """The rbd namespace: ceph client configuration options."""
    if pool_type is not PoolType.RBD:
        return ()
    pairs = []
    for opt in xnodes(root, "./rbd:config_opts/rbd:option", {"rbd": RBD_NS}):
        name = attr(opt, "name")
        if name is None:
            raise fail("no rbd option name specified")
        value = attr(opt, "value")
        if value is None:
            raise fail("no rbd option value specified")
        pairs.append((name, value))
    return tuple(pairs)


def parse_pool(text: str | bytes) -> PoolDef:
    """Parse a ``<pool>`` document with libvirt's ``virStoragePoolDefParse`` semantics.

    Raises ``XmlError`` (one line) for malformed XML and for every rule libvirt checks.
    """
    root = parse_document(text, "pool")
    raw_type = attr(root, "type")
    if raw_type is None:
        raise fail("Missing required attribute 'type' in element 'pool'")
    try:
        pool_type = PoolType(raw_type)
    except ValueError:
        raise fail(f"Invalid value for attribute 'type' in element 'pool': '{raw_type}'") from None
    info = type_info(pool_type)
    needs = info.needs

    source = parse_source(xnode(root, "./source"), pool_type)

    name = xstring(root, "./name")
    if name is None and SourceNeeds.NAME in needs:
        name = source.name
    if name is None:
        raise fail("missing pool source name element")
    if "/" in name:
        raise fail(f"name {name} cannot contain '/'")

    raw_uuid = xstring(root, "./uuid")
    if raw_uuid is None:
        uuid = str(uuidlib.uuid4())
    else:
        parsed_uuid = parse_uuid(raw_uuid)
        if parsed_uuid is None:
            raise fail("malformed uuid element")
        uuid = parsed_uuid

    cow = _parse_cow(root, pool_type)

    if SourceNeeds.HOST in needs and not source.hosts:
        raise fail("missing storage pool source host name")
    if SourceNeeds.DIR in needs and source.dir is None:
        raise fail("missing storage pool source path")
    if SourceNeeds.NAME in needs and source.name is None:
        source = replace(source, name=name)
    if SourceNeeds.ADAPTER in needs:
        validate_adapter(source.adapter)
    if needs == SourceNeeds.DEVICE and not source.devices:
        raise fail("missing storage pool source device name")

    target = PoolTarget()
    if info.has_target:
        if pool_type is PoolType.LOGICAL:
            target_path = f"/dev/{source.name}"
        elif pool_type is PoolType.ZFS:
            target_path = f"/dev/zvol/{source.name}"
        else:
            given = xstring(root, "./target/path")
            if given is None:
                raise fail("missing storage pool target path")
            target_path = given
        target = PoolTarget(
            path=sanitize_path(target_path), permissions=parse_perms(root, "./target/permissions")
        )

    if pool_type is PoolType.ISCSI_DIRECT and source.initiator_iqn is None:
        raise fail("missing initiator IQN")

    refresh = xstring(root, "./refresh/volume/@allocation")
    if refresh is not None and refresh not in ("default", "capacity"):
        raise fail(f"unknown storage pool volume refresh allocation type {refresh}")

    thin_pool = parse_thin_pool(root, pool_type)  # kvmpool's namespace, after libvirt's checks

    return PoolDef(
        type=pool_type,
        name=name,
        uuid=uuid,
        source=source,
        target=target,
        cow=cow,
        refresh_vol_allocation=refresh,
        fs_mount_opts=_fs_mount_opts(root, pool_type),
        rbd_config_opts=_rbd_config_opts(root, pool_type),
        thin_pool=thin_pool,
    )


# ---------------------------------------------------------------- format


def format_pool(pool: PoolDef) -> str:
    """Format ``pool`` exactly as libvirt's ``virStoragePoolDefFormat`` does.

    kvmpool's namespace (:mod:`kvmpool.xml.ext`) comes on top: its declaration on
    ``<pool>`` and its elements at the end, only when the pool uses an extension. Raises
    ``XmlError`` for an extension ``parse_pool`` would refuse (a thin pool binding on a
    pool that is not logical, a bad LV name, thin usage without a binding).
    """
    info = type_info(pool.type)
    w = Writer()
    ns = ""
    if pool.type in (PoolType.FS, PoolType.NETFS) and pool.fs_mount_opts:
        ns = f" xmlns:fs='{FS_NS}'"
    elif pool.type is PoolType.RBD and pool.rbd_config_opts:
        ns = f" xmlns:rbd='{RBD_NS}'"
    w.open(f"<pool type='{pool.type.value}'{ns}{namespace_decl(pool)}>")
    w.line(f"<name>{esc(pool.name)}</name>")
    w.line(f"<uuid>{pool.uuid}</uuid>")
    w.line(f"<capacity unit='bytes'>{pool.capacity}</capacity>")
    w.line(f"<allocation unit='bytes'>{pool.allocation}</allocation>")
    w.line(f"<available unit='bytes'>{pool.available}</available>")
    if pool.cow is not None:
        w.open("<features>")
        w.line(f"<cow state='{'yes' if pool.cow else 'no'}'/>")
        w.close("</features>")
    format_source(w, pool.source, pool.type)
    if info.has_target:
        w.open("<target>")
        if pool.target.path is not None:
            w.line(f"<path>{esc(pool.target.path)}</path>")
        format_perms(w, pool.target.permissions)
        w.close("</target>")
    if pool.refresh_vol_allocation is not None:
        w.open("<refresh>")
        w.line(f"<volume allocation='{esc(pool.refresh_vol_allocation)}'/>")
        w.close("</refresh>")
    if ns and pool.fs_mount_opts:
        w.open("<fs:mount_opts>")
        for opt in pool.fs_mount_opts:
            w.line(f"<fs:option name='{esc(opt)}'/>")
        w.close("</fs:mount_opts>")
    elif ns and pool.rbd_config_opts:
        w.open("<rbd:config_opts>")
        for key, value in pool.rbd_config_opts:
            w.line(f"<rbd:option name='{esc(key)}' value='{esc(value)}'/>")
        w.close("</rbd:config_opts>")
    format_extensions(w, pool)
    w.close("</pool>")
    return w.text()


def format_sources(sources: Sequence[PoolSource], pool_type: PoolType) -> str:
    """``virStoragePoolSourceListFormat``: the answer of find-storage-pool-sources."""
    w = Writer()
    w.open("<sources>")
    for source in sources:
        format_source(w, source, pool_type)
    w.close("</sources>")
    return w.text()
