"""``<pool>`` documents: parse with libvirt's rules, format byte for byte like libvirt.

Follows ``virStoragePoolDefParseXML`` and ``virStoragePoolDefFormat`` of libvirt 9.0
(behaviour only; see the package docstring for where kvmpool deliberately differs).
"""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import replace

from kvmpool.model import (
    Adapter,
    Auth,
    PciAddress,
    Permissions,
    PoolDef,
    PoolSource,
    PoolTarget,
    PoolType,
    SecretRef,
    SourceDevice,
    SourceHost,
)
from kvmpool.xml._doc import (
    Element,
    attr,
    c_int,
    c_uint,
    fail,
    parse_document,
    prop_int,
    prop_yes_no,
    xnode,
    xnodes,
    xstring,
)
from kvmpool.xml._writer import Writer, esc
from kvmpool.xml.types import NETFS_FORMATS, SourceNeeds, TypeInfo, type_info

FS_NS = "http://libvirt.org/schemas/storagepool/fs/1.0"
RBD_NS = "http://libvirt.org/schemas/storagepool/rbd/1.0"
_UINT_MAX = 2**32 - 1


# ---------------------------------------------------------------- shared value readers


def sanitize_path(path: str) -> str:
    """libvirt's ``virFileSanitizePath``: collapse ``//``, drop a trailing ``/``.

    A leading ``//`` (exactly two) is kept, as POSIX allows; URIs are left alone.
    """
    scheme = path.find("://")
    if scheme >= 0 and path.find("/") > scheme:
        return path
    prefix, rest = ("//", path[2:]) if path[:2] == "//" and path[2:3] != "/" else ("", path)
    out: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i] != "/":
            out.append(rest[i])
            i += 1
            continue
        while i < len(rest) and rest[i] == "/":
            i += 1
        if (prefix or out) and i == len(rest):
            break
        out.append("/")
    return prefix + "".join(out)


def parse_uuid(text: str) -> str | None:
    """``virUUIDParse``: 32 hex digits, ``-`` anywhere between pairs; canonical form."""
    s = text.lstrip(" \t\n\v\f\r")
    digits: list[str] = []
    i = 0
    while len(digits) < 16:
        while i < len(s) and s[i] == "-":
            i += 1
        if i + 1 >= len(s) or not all(c in "0123456789abcdefABCDEF" for c in s[i : i + 2]):
            return None
        digits.append(s[i : i + 2].lower())
        i += 2
    if s[i:].strip(" \t\n\v\f\r"):
        return None
    h = "".join(digits)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_perms(parent: Element, path: str) -> Permissions | None:
    """``virStorageDefParsePerms``: octal mode <= 0777, decimal owner/group, -1 = unset."""
    node = xnode(parent, path)
    if node is None:
        return None
    mode: int | None = None
    raw_mode = xstring(node, "./mode")
    if raw_mode is not None:
        mode = c_int(raw_mode, 8)
        if mode is None or not 0 <= mode <= 0o777:
            raise fail("malformed octal mode")

    def ident(tag: str) -> int | None:
        if xnode(node, f"./{tag}") is None:
            return None
        raw = xstring(node, f"./{tag}")
        value = c_int(raw, 10) if raw is not None else None
        if value is None or not (-1 <= value <= _UINT_MAX):
            raise fail(f"malformed {tag} element")
        return None if value in (-1, _UINT_MAX) else value

    owner = ident("owner")
    group = ident("group")
    return Permissions(mode=mode, owner=owner, group=group, label=xstring(node, "./label"))


def format_perms(w: Writer, perms: Permissions | None) -> None:
    if perms is None or (
        perms.mode is None and perms.owner is None and perms.group is None and not perms.label
    ):
        return
    w.open("<permissions>")
    if perms.mode is not None:
        w.line(f"<mode>0{perms.mode:o}</mode>")
    if perms.owner is not None:
        w.line(f"<owner>{perms.owner}</owner>")
    if perms.group is not None:
        w.line(f"<group>{perms.group}</group>")
    if perms.label:
        w.line(f"<label>{esc(perms.label)}</label>")
    w.close("</permissions>")


def parse_secret_lookup(node: Element, secret_type: str | None) -> SecretRef:
    """``virSecretLookupParseSecret``: exactly one of uuid / usage."""
    uuid = attr(node, "uuid")
    usage = attr(node, "usage")
    if uuid is None and usage is None:
        raise fail("missing secret uuid or usage attribute")
    if uuid is not None and usage is not None:
        raise fail("either secret uuid or usage expected")
    if uuid is not None:
        canonical = parse_uuid(uuid)
        if canonical is None:
            raise fail(f"invalid secret uuid '{uuid}'")
        return SecretRef(uuid=canonical, type=secret_type)
    return SecretRef(usage=usage, type=secret_type)


def format_secret(w: Writer, secret: SecretRef) -> None:
    head = f"<secret type='{esc(secret.type)}'" if secret.type is not None else "<secret"
    if secret.uuid is not None:
        w.line(f"{head} uuid='{secret.uuid}'/>")
    elif secret.usage is not None:
        w.line(f"{head} usage='{esc(secret.usage)}'/>")
    else:
        w.line(f"{head}/>")


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


def _validate_adapter(adapter: Adapter | None) -> None:
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


def _parse_cow(root: Element, pool_type: PoolType) -> bool | None:
    node = xnode(root, "./features/cow")
    if node is None:
        return None
    state = prop_yes_no(node, "state")
    if state is not None and pool_type not in (PoolType.FS, PoolType.DIR):
        raise fail("cow feature may only be used for 'fs' and 'dir' pools")
    return state


def _parse_namespace(root: Element, pool_type: PoolType) -> dict[str, object]:
    if pool_type in (PoolType.FS, PoolType.NETFS):
        opts = []
        for opt in xnodes(root, "./fs:mount_opts/fs:option", {"fs": FS_NS}):
            name = attr(opt, "name")
            if name is None:
                raise fail("no fs mount option name specified")
            opts.append(name)
        return {"fs_mount_opts": tuple(opts)}
    if pool_type is PoolType.RBD:
        pairs = []
        for opt in xnodes(root, "./rbd:config_opts/rbd:option", {"rbd": RBD_NS}):
            name = attr(opt, "name")
            if name is None:
                raise fail("no rbd option name specified")
            value = attr(opt, "value")
            if value is None:
                raise fail("no rbd option value specified")
            pairs.append((name, value))
        return {"rbd_config_opts": tuple(pairs)}
    return {}


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
        _validate_adapter(source.adapter)
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

    namespace = _parse_namespace(root, pool_type)
    return PoolDef(
        type=pool_type,
        name=name,
        uuid=uuid,
        source=source,
        target=target,
        cow=cow,
        refresh_vol_allocation=refresh,
        fs_mount_opts=namespace.get("fs_mount_opts", ()),  # type: ignore[arg-type]
        rbd_config_opts=namespace.get("rbd_config_opts", ()),  # type: ignore[arg-type]
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


def format_pool(pool: PoolDef) -> str:
    """Format ``pool`` exactly as libvirt's ``virStoragePoolDefFormat`` does."""
    info = type_info(pool.type)
    w = Writer()
    ns = ""
    if pool.type in (PoolType.FS, PoolType.NETFS) and pool.fs_mount_opts:
        ns = f" xmlns:fs='{FS_NS}'"
    elif pool.type is PoolType.RBD and pool.rbd_config_opts:
        ns = f" xmlns:rbd='{RBD_NS}'"
    w.open(f"<pool type='{pool.type.value}'{ns}>")
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
