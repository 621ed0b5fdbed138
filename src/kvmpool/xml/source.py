"""A pool's ``<source>``: hosts, devices, dir, adapter, name, initiator, format, auth.

``virStoragePoolDefParseSource`` / ``virStoragePoolSourceFormat`` semantics; which parts a
pool type uses comes from :mod:`kvmpool.xml.types`. Also used for the ``<sources>`` answer
of find-storage-pool-sources.
"""

from __future__ import annotations

import re

from kvmpool.model import Adapter, Auth, PciAddress, PoolSource, PoolType, SourceDevice, SourceHost
from kvmpool.xml._common import format_secret, parse_secret_lookup, sanitize_path
from kvmpool.xml._doc import (
    Element,
    attr,
    c_int,
    c_uint,
    fail,
    prop_int,
    prop_yes_no,
    xnode,
    xnodes,
    xstring,
)
from kvmpool.xml._writer import Writer, esc
from kvmpool.xml.types import NETFS_FORMATS, SourceNeeds, TypeInfo, type_info

# ---------------------------------------------------------------- parse


def _format_index(info: TypeInfo, fmt: str | None) -> int:
    if not info.source_formats or fmt is None:
        return 0
    return info.source_formats.index(fmt)


def _parse_auth(node: Element) -> Auth:
    username = xstring(node, "./@username")
    if username is None:
        raise fail("missing username for auth")
    auth_type = xstring(node, "./@type")
    if auth_type is not None and auth_type not in ("none", "chap", "ceph"):
        raise fail(f"unknown auth type '{auth_type}'")
    secret_node = xnode(node, "./secret")
    if secret_node is None:
        raise fail("Missing <secret> element in auth")
    secret = parse_secret_lookup(secret_node, attr(secret_node, "type"))
    if auth_type in (None, "none"):
        raise fail("storage pool missing auth type")
    return Auth(type=auth_type, username=username, secret=secret)


_WWN = re.compile(r"(0x)?[0-9a-fA-F]{16}\Z")


def _check_wwn(value: str) -> None:
    if not _WWN.match(value):
        raise fail(f"Malformed wwn: {value}")


def _parse_pci_address(node: Element) -> PciAddress:
    values = {}
    for name, limit in (("domain", 0xFFFF), ("bus", 0xFF), ("slot", 0x1F), ("function", 7)):
        raw = attr(node, name)
        value = 0
        if raw is not None:
            parsed = c_uint(raw, 0)
            if parsed is None:
                raise fail(f"Cannot parse <address> '{name}' attribute")
            value = parsed
        values[name] = (value, limit)
    if any(v for v, _ in values.values()):
        for name, (value, limit) in values.items():
            if value > limit:
                raise fail(f"Invalid PCI address {name}='{value:#x}', must be <= {limit:#x}")
    return PciAddress(*(v for v, _ in values.values()))


def _parse_adapter(node: Element) -> Adapter:
    kind = attr(node, "type")
    if kind is None:
        # Legacy form: only a name, meaning a scsi_host.
        if any(attr(node, a) is not None for a in ("wwnn", "wwpn", "parent")):
            raise fail(
                "Use of 'wwnn', 'wwpn', and 'parent' attributes requires use of the adapter 'type'"
            )
        if xnode(node, "./parentaddr") is not None:
            raise fail("Use of 'parentaddr' element requires use of the adapter 'type'")
        name = attr(node, "name")
        return Adapter(type="scsi_host" if name is not None else None, name=name)
    if kind == "fc_host":
        return Adapter(
            type=kind,
            managed=prop_yes_no(node, "managed"),
            parent=attr(node, "parent"),
            parent_wwnn=attr(node, "parent_wwnn"),
            parent_wwpn=attr(node, "parent_wwpn"),
            parent_fabric_wwn=attr(node, "parent_fabric_wwn"),
            wwnn=attr(node, "wwnn"),
            wwpn=attr(node, "wwpn"),
        )
    if kind == "scsi_host":
        name = attr(node, "name")
        if xnode(node, "./parentaddr") is None:
            return Adapter(type=kind, name=name)
        address = xnode(node, "./parentaddr/address")
        if address is None:
            raise fail("Missing scsi_host PCI address element")
        parent_address = _parse_pci_address(address)
        raw_id = xstring(node, "./parentaddr/@unique_id")
        unique_id = c_int(raw_id, 10) if raw_id is not None else None
        if unique_id is None or not 0 <= unique_id < 2**31:
            raise fail("Missing or invalid scsi adapter 'unique_id' value")
        return Adapter(type=kind, name=name, unique_id=unique_id, parent_address=parent_address)
    raise fail(f"Invalid value for attribute 'type' in element 'adapter': '{kind}'")


def validate_adapter(adapter: Adapter | None) -> None:
    """``virStorageAdapterValidate``."""
    if adapter is None or adapter.type is None:
        raise fail("missing storage pool source adapter")
    if adapter.type == "fc_host":
        if not adapter.wwnn or not adapter.wwpn:
            raise fail("'wwnn' and 'wwpn' must be specified for adapter type 'fchost'")
        _check_wwn(adapter.wwnn)
        _check_wwn(adapter.wwpn)
        if adapter.parent_wwnn is not None and adapter.parent_wwpn is None:
            raise fail(
                f"when providing parent_wwnn='{adapter.parent_wwnn}', the parent_wwpn "
                "must also be provided"
            )
        if adapter.parent_wwnn is None and adapter.parent_wwpn is not None:
            raise fail(
                f"when providing parent_wwpn='{adapter.parent_wwpn}', the parent_wwnn "
                "must also be provided"
            )
        for wwn in (adapter.parent_wwnn, adapter.parent_wwpn, adapter.parent_fabric_wwn):
            if wwn is not None:
                _check_wwn(wwn)
    elif adapter.type == "scsi_host":
        has_parent = adapter.parent_address is not None
        if adapter.name is None and not has_parent:
            raise fail("Either 'name' or 'parent' must be specified for the 'scsi_host' adapter")
        if adapter.name is not None and has_parent:
            raise fail("Both 'name' and 'parent' cannot be specified for the 'scsi_host' adapter")


def parse_source(node: Element | None, pool_type: PoolType) -> PoolSource:
    """``virStoragePoolDefParseSource``; ``node`` None means no ``<source>`` at all."""
    info = type_info(pool_type)
    if node is None:
        return PoolSource(format=info.default_source_format)

    name = xstring(node, "./name")
    if pool_type is PoolType.RBD and name is None:
        raise fail("element 'name' is mandatory for RBD pool")

    fmt: str | None = None
    if info.source_formats:
        raw_format = xstring(node, "./format/@type")
        fmt = info.default_source_format if raw_format is None else raw_format
        if fmt not in info.source_formats:
            raise fail(f"unknown pool format type {raw_format}")

    hosts = []
    for host in xnodes(node, "./host"):
        host_name = attr(host, "name")
        if host_name is None:
            raise fail("missing storage pool host name")
        hosts.append(SourceHost(name=host_name, port=prop_int(host, "port")))

    initiator_iqn = xstring(node, "./initiator/iqn/@name")

    devices = []
    for dev in xnodes(node, "./device"):
        path = attr(dev, "path")
        if path is None:
            raise fail("missing storage pool source device path")
        devices.append(SourceDevice(path=path, part_separator=prop_yes_no(dev, "part_separator")))

    raw_dir = xstring(node, "./dir/@path")
    source_dir = sanitize_path(raw_dir) if raw_dir is not None else None
    if source_dir is None and pool_type is PoolType.GLUSTER:
        source_dir = "/"

    adapter_node = xnode(node, "./adapter")
    adapter = _parse_adapter(adapter_node) if adapter_node is not None else None

    auth_node = xnode(node, "./auth")
    auth = _parse_auth(auth_node) if auth_node is not None else None

    protocol_ver = xstring(node, "./protocol/@ver")
    if protocol_ver is not None:
        # libvirt compares the format *number* with netfs' nfs (1) and auto (0).
        index = _format_index(info, fmt)
        if index not in (0, 1):
            shown = NETFS_FORMATS[index] if index < len(NETFS_FORMATS) else "(null)"
            raise fail(f"storage pool protocol ver unsupported for pool type '{shown}'")
        if "," in protocol_ver:
            raise fail(f"storage pool protocol ver '{protocol_ver}' must not contain ','")

    return PoolSource(
        hosts=tuple(hosts),
        devices=tuple(devices),
        dir=source_dir,
        adapter=adapter,
        name=name,
        initiator_iqn=initiator_iqn,
        format=fmt,
        auth=auth,
        protocol_ver=protocol_ver,
        vendor=xstring(node, "./vendor/@name"),
        product=xstring(node, "./product/@name"),
    )


# ---------------------------------------------------------------- format


def _format_adapter(w: Writer, adapter: Adapter) -> None:
    head = f"<adapter type='{adapter.type}'"
    if adapter.type == "fc_host":
        for key in ("parent", "parent_wwnn", "parent_wwpn", "parent_fabric_wwn"):
            value = getattr(adapter, key)
            if value is not None:
                head += f" {key}='{esc(value)}'"
        if adapter.managed is not None:
            head += f" managed='{'yes' if adapter.managed else 'no'}'"
        w.line(f"{head} wwnn='{esc(adapter.wwnn or '')}' wwpn='{esc(adapter.wwpn or '')}'/>")
        return
    if adapter.name is not None:
        w.line(f"{head} name='{esc(adapter.name)}'/>")
        return
    w.open(f"{head}>")
    w.open(f"<parentaddr unique_id='{adapter.unique_id or 0}'>")
    a = adapter.parent_address or PciAddress(0, 0, 0, 0)
    w.line(
        f"<address domain='0x{a.domain:04x}' bus='0x{a.bus:02x}' "
        f"slot='0x{a.slot:02x}' function='0x{a.function}'/>"
    )
    w.close("</parentaddr>")
    w.close("</adapter>")


def format_source(w: Writer, source: PoolSource, pool_type: PoolType) -> None:
    """``virStoragePoolSourceFormat``: the parts the type uses, in libvirt's order."""
    info = type_info(pool_type)
    needs = info.needs
    w.open("<source>")
    if SourceNeeds.HOST in needs:
        for host in source.hosts:
            port = f" port='{host.port}'" if host.port else ""
            w.line(f"<host name='{esc(host.name)}'{port}/>")
    if SourceNeeds.DEVICE in needs:
        for dev in source.devices:
            head = f"<device path='{esc(dev.path)}'"
            if dev.part_separator is not None:
                head += f" part_separator='{'yes' if dev.part_separator else 'no'}'"
            if dev.free_extents:
                w.open(head + ">")
                for ext in dev.free_extents:
                    w.line(f"<freeExtent start='{ext.start}' end='{ext.end}'/>")
                w.close("</device>")
            else:
                w.line(head + "/>")
    if SourceNeeds.DIR in needs and source.dir is not None:
        w.line(f"<dir path='{esc(source.dir)}'/>")
    if (
        SourceNeeds.ADAPTER in needs
        and source.adapter is not None
        and source.adapter.type in ("fc_host", "scsi_host")
    ):
        _format_adapter(w, source.adapter)
    if SourceNeeds.NAME in needs and source.name is not None:
        w.line(f"<name>{esc(source.name)}</name>")
    if SourceNeeds.INITIATOR_IQN in needs and source.initiator_iqn is not None:
        w.open("<initiator>")
        w.line(f"<iqn name='{esc(source.initiator_iqn)}'/>")
        w.close("</initiator>")
    if info.source_formats:
        w.line(f"<format type='{esc(source.format or info.default_source_format or '')}'/>")
    if source.auth is not None:
        auth = source.auth
        if auth.type == "none":
            w.open(f"<auth username='{esc(auth.username)}'>")
        else:
            w.open(f"<auth type='{esc(auth.type)}' username='{esc(auth.username)}'>")
        format_secret(w, auth.secret)
        w.close("</auth>")
    if source.protocol_ver is not None:
        w.line(f"<protocol ver='{esc(source.protocol_ver)}'/>")
    if source.vendor is not None:
        w.line(f"<vendor name='{esc(source.vendor)}'/>")
    if source.product is not None:
        w.line(f"<product name='{esc(source.product)}'/>")
    w.close("</source>")
