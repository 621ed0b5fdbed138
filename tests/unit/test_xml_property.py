"""Properties: formatting is a fixed point of parse; damaged input gives only XmlError.

For generated dir, netfs and logical pools: ``format_pool(parse_pool(x))`` gives ``x``
back for ``x = format_pool(p)`` (p already in libvirt's normal form), and the parsed
values are equal too.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpool.errors import XmlError
from kvmpool.model import (
    Permissions,
    PoolDef,
    PoolSource,
    PoolTarget,
    PoolType,
    SourceDevice,
    SourceHost,
)
from kvmpool.xml import format_pool, format_volume, parse_pool, parse_volume, validate

# XML-safe text that survives a round trip unchanged (no \r, no control characters,
# no leading/trailing blanks that libvirt would keep but we could not see in the model).
_ALPHABET = st.characters(
    codec="utf-8",
    categories=("L", "N", "P", "S", "Zs"),
    exclude_characters="\x85\u2028\u2029",
)
text = st.text(_ALPHABET, min_size=1, max_size=20).filter(lambda s: s.strip() == s)
name = text.filter(lambda s: "/" not in s)
path_part = st.text(st.sampled_from("abcxyz019-_.<>&'\" é"), min_size=1, max_size=8).filter(
    lambda s: s.strip() == s and "/" not in s
)
abs_path = st.lists(path_part, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
ident = st.one_of(st.none(), st.integers(0, 2**32 - 2))
perms = st.one_of(
    st.none(),
    st.builds(
        Permissions,
        mode=st.one_of(st.none(), st.integers(0, 0o777)),
        owner=ident,
        group=ident,
        label=st.one_of(st.none(), text),
    ),
)
uuids = st.uuids().map(str)
hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True)


@st.composite
def dir_pools(draw: st.DrawFn) -> PoolDef:
    return PoolDef(
        type=PoolType.DIR,
        name=draw(name),
        uuid=draw(uuids),
        target=PoolTarget(path=draw(abs_path), permissions=draw(perms)),
        cow=draw(st.one_of(st.none(), st.booleans())),
    )  # <refresh> is rbd-only in libvirt's schema (its parser takes it anywhere)


@st.composite
def netfs_pools(draw: st.DrawFn) -> PoolDef:
    hosts = draw(
        st.lists(
            st.builds(SourceHost, name=hostnames, port=st.one_of(st.none(), st.integers(1, 65535))),
            min_size=1,
            max_size=3,
        )
    )
    fmt = draw(st.sampled_from(["auto", "nfs", "glusterfs", "cifs"]))
    ver = draw(st.sampled_from([None, "3", "4.1"])) if fmt in ("auto", "nfs") else None
    return PoolDef(
        type=PoolType.NETFS,
        name=draw(name),
        uuid=draw(uuids),
        source=PoolSource(hosts=tuple(hosts), dir=draw(abs_path), format=fmt, protocol_ver=ver),
        target=PoolTarget(path=draw(abs_path), permissions=draw(perms)),
        fs_mount_opts=tuple(draw(st.lists(text, max_size=3))),
    )


@st.composite
def logical_pools(draw: st.DrawFn) -> PoolDef:
    vg = draw(name)
    devices = draw(st.lists(abs_path.map(SourceDevice), max_size=3))
    return PoolDef(
        type=PoolType.LOGICAL,
        name=draw(st.one_of(st.just(vg), name)),
        uuid=draw(uuids),
        source=PoolSource(devices=tuple(devices), name=vg, format="lvm2"),
        target=PoolTarget(path=f"/dev/{vg}", permissions=draw(perms)),
    )


pools = st.one_of(dir_pools(), netfs_pools(), logical_pools())


@settings(max_examples=300, deadline=None)
@given(pools)
def test_format_parse_format_is_stable(pool: PoolDef) -> None:
    first = format_pool(pool)
    parsed = parse_pool(first)
    second = format_pool(parsed)
    assert second == first
    assert format_pool(parse_pool(second)) == second
    assert parse_pool(second) == parsed


@settings(max_examples=60, deadline=None)
@given(pools)
def test_generated_pools_validate(pool: PoolDef) -> None:
    validate(format_pool(pool), "pool")


# ---------------------------------------------------------------- robustness

_DATA = Path(__file__).resolve().parent.parent / "data" / "libvirt-xml"
_CORPUS = sorted(p.read_bytes() for p in _DATA.glob("storage*xml2xml*/*.xml"))
_DIR_POOL = parse_pool((_DATA / "storagepoolxml2xmlin" / "pool-dir.xml").read_bytes())
_JUNK = [b"<", b">", b"'", b'"', b"&", b"/", b"\x00", b"\xff", b"<a/>", b"&amp;", b"-1", b" "]


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    doc = bytearray(draw(st.sampled_from(_CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(doc) - 1))
        if draw(st.booleans()):
            del doc[pos : pos + draw(st.integers(1, 12))]
        else:
            doc[pos:pos] = draw(st.sampled_from(_JUNK))
    return bytes(doc)


@settings(max_examples=300, deadline=None)
@given(mutated_documents())
def test_damaged_documents_give_xml_errors_or_stable_values(doc: bytes) -> None:
    try:
        pool = parse_pool(doc)
    except XmlError:
        pass
    else:
        assert format_pool(parse_pool(format_pool(pool))) == format_pool(pool)
    try:
        vol = parse_volume(doc, _DIR_POOL)
    except XmlError:
        pass
    else:
        out = format_volume(vol, PoolType.DIR)
        assert format_volume(parse_volume(out, _DIR_POOL), PoolType.DIR) == out
