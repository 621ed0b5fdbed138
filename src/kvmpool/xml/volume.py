"""``<volume>`` documents: ``virStorageVolDefParse`` / ``virStorageVolDefFormat`` semantics.

The pool matters: its type decides the format enum (image formats, disk partition types,
or none at all) and so whether ``<format>`` appears.
"""

from __future__ import annotations

import re

from kvmpool.model import (
    Cipher,
    Encryption,
    Ivgen,
    PoolDef,
    PoolType,
    Timestamps,
    VolTarget,
    VolType,
    VolumeDef,
)
from kvmpool.units import ULLONG_MAX
from kvmpool.xml._common import format_perms, format_secret, parse_perms, parse_secret_lookup
from kvmpool.xml._doc import (
    Element,
    attr,
    fail,
    parse_document,
    prop_uint,
    scaled,
    xnode,
    xnodes,
    xstring,
)
from kvmpool.xml._writer import Writer, esc
from kvmpool.xml.types import TypeInfo, type_info

_LLONG_MAX = 2**63 - 1
ENCRYPTION_FORMATS = ("default", "qcow", "luks", "luks2")
ENCRYPTION_ENGINES = ("qemu", "librbd")
FEATURES = ("lazy_refcounts", "extended_l2")
_COMPAT = re.compile(r"[0-9]+\.[0-9]+\Z")


def _vol_format(info: TypeInfo, root: Element, path: str) -> str | None:
    if not info.vol_formats:
        return None
    raw = xstring(root, path)
    fmt = info.default_vol_format if raw is None else raw
    if fmt not in info.vol_formats:
        raise fail(f"unknown volume format type {raw}")
    return fmt


def _parse_encryption(node: Element) -> Encryption:
    """``virStorageEncryptionParseNode``."""
    fmt = xstring(node, "./@format")
    if fmt is None:
        raise fail("unknown volume encryption format")
    if fmt not in ENCRYPTION_FORMATS:
        raise fail(f"unknown volume encryption format type {fmt}")
    engine = attr(node, "engine")
    if engine is not None and engine not in ENCRYPTION_ENGINES:
        raise fail(f"Invalid value for attribute 'engine' in element 'encryption': '{engine}'")
    secrets = []
    for secret_node in xnodes(node, "./secret"):
        secret_type = xstring(secret_node, "./@type")
        if secret_type is None:
            raise fail("unknown volume encryption secret type")
        if secret_type != "passphrase":  # noqa: S105 - a secret *type* name
            raise fail(f"unknown volume encryption secret type {secret_type}")
        secrets.append(parse_secret_lookup(secret_node, secret_type))
    if len(secrets) > 1:
        raise fail("only one <secret> is supported in <encryption>")
    cipher = ivgen = None
    if fmt == "luks":
        cipher_node = xnode(node, "./cipher[1]")
        if cipher_node is not None:
            name = attr(cipher_node, "name")
            if name is None:
                raise fail("cipher info missing 'name' attribute")
            size = prop_uint(cipher_node, "size", required=True)
            assert size is not None
            cipher = Cipher(
                name=name, size=size, mode=attr(cipher_node, "mode"), hash=attr(cipher_node, "hash")
            )
        ivgen_node = xnode(node, "./ivgen[1]")
        if ivgen_node is not None:
            if cipher is None:
                raise fail("ivgen element found, but cipher is missing")
            ivgen_name = attr(ivgen_node, "name")
            if ivgen_name is None:
                raise fail("missing ivgen info name string")
            ivgen = Ivgen(name=ivgen_name, hash=attr(ivgen_node, "hash"))
    return Encryption(
        format=fmt,
        secret=secrets[0] if secrets else None,
        cipher=cipher,
        ivgen=ivgen,
        engine=engine,
    )


def parse_volume(text: str | bytes, pool: PoolDef, *, capacity_optional: bool = False) -> VolumeDef:
    """Parse a ``<volume>`` document for a volume of ``pool`` (``virStorageVolDefParse``).

    ``<capacity>`` is required unless ``capacity_optional`` (clone / create-from input) or
    a ``<backingStore>`` is given. ``allocation`` stays None when absent ("same as
    capacity"). Source extents, timestamps and ``<physical>`` are not read: the pool
    backend reports them.
    """
    root = parse_document(text, "volume")
    info = type_info(pool.type)

    name = xstring(root, "./name")
    if name is None:
        raise fail("missing volume name element")
    key = xstring(root, "./key")

    vol_type = VolType.FILE
    raw_type = xstring(root, "./@type")
    if raw_type is not None:
        try:
            vol_type = VolType(raw_type)
        except ValueError:
            raise fail(f"unknown volume type '{raw_type}'") from None

    backing: VolTarget | None = None
    backing_path = xstring(root, "./backingStore/path")
    if backing_path is not None:
        backing = VolTarget(
            path=backing_path,
            format=_vol_format(info, root, "./backingStore/format/@type"),
            permissions=parse_perms(root, "./backingStore/permissions"),
        )

    capacity: int | None = None
    raw_capacity = xstring(root, "./capacity")
    if raw_capacity is not None:
        capacity = scaled(
            raw_capacity, xstring(root, "./capacity/@unit"), what="capacity", limit=_LLONG_MAX
        )
    elif not capacity_optional and backing is None:
        raise fail("missing capacity element")

    allocation: int | None = None
    raw_allocation = xstring(root, "./allocation")
    if raw_allocation is not None:
        allocation = scaled(
            raw_allocation,
            xstring(root, "./allocation/@unit"),
            what="allocation",
            limit=_LLONG_MAX,
        )

    path = xstring(root, "./target/path")
    fmt = _vol_format(info, root, "./target/format/@type")
    perms = parse_perms(root, "./target/permissions")
    enc_node = xnode(root, "./target/encryption")
    encryption = _parse_encryption(enc_node) if enc_node is not None else None

    compat = xstring(root, "./target/compat")
    if compat is not None and not _COMPAT.match(compat):
        raise fail("forbidden characters in 'compat' attribute")
    nocow = xnode(root, "./target/nocow") is not None

    cluster_size: int | None = None
    raw_cluster = xstring(root, "./target/clusterSize")
    if raw_cluster is not None:
        cluster_size = scaled(
            raw_cluster,
            xstring(root, "./target/clusterSize/@unit"),
            what="clusterSize",
            limit=ULLONG_MAX,
        )

    has_features = xnode(root, "./target/features") is not None
    found: set[str] = set()
    if has_features:
        for feature in xnodes(root, "./target/features/*"):
            tag = feature.tag if isinstance(feature.tag, str) else ""
            if tag not in FEATURES:
                raise fail(f"unsupported feature {tag}")
            found.add(tag)
        if compat is None:
            compat = "1.1"

    target = VolTarget(
        path=path,
        format=fmt,
        permissions=perms,
        encryption=encryption,
        compat=compat,
        cluster_size=cluster_size,
        nocow=nocow,
        lazy_refcounts="lazy_refcounts" in found,
        extended_l2="extended_l2" in found,
        has_features=has_features,
    )
    return VolumeDef(
        name=name,
        type=vol_type,
        key=key,
        capacity=capacity,
        allocation=allocation,
        target=target,
        backing_store=backing,
    )


# ---------------------------------------------------------------- format


def _format_timestamps(w: Writer, ts: Timestamps | None) -> None:
    if ts is None:
        return
    w.open("<timestamps>")
    for tag in ("atime", "mtime", "ctime", "btime"):
        value = getattr(ts, tag)
        if value is not None:
            w.line(f"<{tag}>{esc(value)}</{tag}>")
    w.close("</timestamps>")


def _format_encryption(w: Writer, enc: Encryption) -> None:
    engine = f" engine='{esc(enc.engine)}'" if enc.engine else ""
    w.open(f"<encryption format='{esc(enc.format)}'{engine}>")
    if enc.secret is not None:
        format_secret(w, enc.secret)
    if enc.format == "luks" and enc.cipher is not None:
        c = enc.cipher
        line = f"<cipher name='{esc(c.name)}' size='{c.size}'"
        if c.mode is not None:
            line += f" mode='{esc(c.mode)}'"
        if c.hash is not None:
            line += f" hash='{esc(c.hash)}'"
        w.line(line + "/>")
        if enc.ivgen is not None:
            iv = f"<ivgen name='{esc(enc.ivgen.name)}'"
            if enc.ivgen.hash is not None:
                iv += f" hash='{esc(enc.ivgen.hash)}'"
            w.line(iv + "/>")
    w.close("</encryption>")


def _format_target(w: Writer, t: VolTarget, info: TypeInfo, tag: str) -> None:
    """``virStorageVolTargetDefFormat`` for ``<target>`` and ``<backingStore>``."""
    w.open(f"<{tag}>")
    if t.path is not None:
        w.line(f"<path>{esc(t.path)}</path>")
    if info.vol_formats:
        w.line(f"<format type='{esc(t.format or info.default_vol_format or '')}'/>")
    format_perms(w, t.permissions)
    _format_timestamps(w, t.timestamps)
    if t.encryption is not None:
        _format_encryption(w, t.encryption)
    if t.compat is not None:
        w.line(f"<compat>{esc(t.compat)}</compat>")
    if t.cluster_size:
        w.line(f"<clusterSize unit='B'>{t.cluster_size}</clusterSize>")
    features = [f for f in FEATURES if getattr(t, f)]
    if features:
        w.open("<features>")
        for feature in features:
            w.line(f"<{feature}/>")
        w.close("</features>")
    elif t.has_features:
        w.line("<features/>")
    w.close(f"</{tag}>")


def format_volume(vol: VolumeDef, pool_type: PoolType) -> str:
    """Format ``vol`` exactly as libvirt's ``virStorageVolDefFormat`` does.

    A None allocation is printed as the capacity; a None capacity as 0.
    """
    info = type_info(pool_type)
    w = Writer()
    w.open(f"<volume type='{vol.type.value}'>")
    w.line(f"<name>{esc(vol.name)}</name>")
    if vol.key is not None:
        w.line(f"<key>{esc(vol.key)}</key>")
    devices = [d for d in vol.source if d.extents]
    if devices:
        w.open("<source>")
        for dev in devices:
            w.open(f"<device path='{esc(dev.path)}'>")
            for ext in dev.extents:
                w.line(f"<extent start='{ext.start}' end='{ext.end}'/>")
            w.close("</device>")
        w.close("</source>")
    capacity = vol.capacity or 0
    allocation = capacity if vol.allocation is None else vol.allocation
    w.line(f"<capacity unit='bytes'>{capacity}</capacity>")
    w.line(f"<allocation unit='bytes'>{allocation}</allocation>")
    if vol.physical:
        w.line(f"<physical unit='bytes'>{vol.physical}</physical>")
    _format_target(w, vol.target, info, "target")
    if vol.backing_store is not None:
        _format_target(w, vol.backing_store, info, "backingStore")
    w.close("</volume>")
    return w.text()
