"""VMware vmdk: sparse extent headers (``KDMV``, ``COWD``) and text descriptors.

A vmdk volume is either one file with an embedded descriptor (monolithicSparse,
streamOptimized) or a small text descriptor naming extent files (monolithicFlat,
twoGbMaxExtent*, vmfs ...). Extent files belong to their descriptor and are listed in
``extra_files``; a ``KDMV`` file without a descriptor is such an extent (subformat
``extent``) and qemu cannot open it alone.

Capacity follows qemu: a sparse header's capacity, or for a descriptor the sum of its
``RW`` FLAT/SPARSE/VMFS/VMFSSPARSE/SESPARSE extents (qemu ignores other lines). The parent
(``parentFileNameHint``) is always a vmdk; qemu records it as such, and so do we.
"""

from __future__ import annotations

import os
import re

from kvmpool.formats._buf import Source, Truncated, le32, le64
from kvmpool.formats._paths import backing_ref, resolve
from kvmpool.formats.info import BackingRef, ImageInfo

KDMV = b"KDMV"
COWD = b"COWD"
_GD_AT_END = 0xFFFFFFFFFFFFFFFF
_MAX_DESC = 1 << 20
_DESC_AT = 512
_DESC_LEN = 20 * 512
_DESC_TYPES = {
    "monolithicFlat",
    "vmfs",
    "vmfsSparse",
    "seSparse",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
}
_EXTENT_TYPES = {"FLAT", "SPARSE", "VMFS", "VMFSSPARSE", "SESPARSE"}
_VERSION_LINE = re.compile(rb"version=[123]\r?\n")


def looks_like_descriptor(head: bytes) -> bool:
    """qemu's rule: comment and blank lines, then a ``version=1|2|3`` line."""
    pos = 0
    end = min(len(head), 2048)
    while pos < end:
        c = head[pos : pos + 1]
        if c == b"#":
            nl = head.find(b"\n", pos, end)
            if nl < 0:
                return False
            pos = nl + 1
        elif c in (b" ", b"\r", b"\n"):
            while pos < end and head[pos : pos + 1] == b" ":
                pos += 1
            if pos < end and head[pos : pos + 1] == b"\r":
                pos += 1
            if pos >= end or head[pos : pos + 1] != b"\n":
                return False
            pos += 1
        else:
            return _VERSION_LINE.match(head, pos) is not None
    return False


def _desc_value(text: str, key: str) -> str | None:
    # [ \t]* rather than \s*: \s would cross lines and go quadratic on hostile input
    m = re.search(rf'^[ \t]*{key}[ \t]*=[ \t]*"([^"\r\n]*)"', text, re.MULTILINE)
    return m.group(1) if m else None


_HEX = re.compile(r"[ \t\n\v\f\r]*[+-]?(?:0[xX])?[0-9a-fA-F]")


def _cids_ok(text: str) -> bool:
    """qemu reads ``CID`` and ``parentCID`` as hex right after the first match of each name."""
    text = text[: 20 * 512]
    for key in ("CID", "parentCID"):
        at = text.find(key)
        if at < 0 or not _HEX.match(text, at + len(key) + 1):
            return False
    return True


def _parent(text: str, src: Source) -> tuple[BackingRef | None, str | None]:
    # qemu looks for the first occurrence of the key anywhere in the descriptor.
    key = "parentFileNameHint="
    at = text.find(key)
    if at < 0:
        return None, None
    start = at + len(key) + 1
    endq = text.find('"', start)
    if endq < 0:
        return None, "unterminated parentFileNameHint"
    name = text[start:endq]
    if not name:
        return None, None
    return backing_ref(name, src.path, "vmdk"), None


_WS = " \t\n\v\f\r"  # C isspace()
_NUMBER = re.compile(r"[+-]?\d+")


def _scan_extent(text: str, i: int) -> list[str]:
    """qemu's ``sscanf(p, "%10s %ld %10s \"%511[^\n\r\"]\" %ld")``: the fields it fills.

    Like sscanf, whitespace (newlines included) is skipped before each field.
    """
    n = len(text)
    fields: list[str] = []

    def skip(j: int) -> int:
        while j < n and text[j] in _WS:
            j += 1
        return j

    def word(j: int) -> tuple[str, int]:
        j = skip(j)
        k = j
        while k < n and k - j < 10 and text[k] not in _WS:
            k += 1
        return text[j:k], k

    def number(j: int) -> tuple[str, int]:
        j = skip(j)
        m = _NUMBER.match(text, j)
        return (m.group(), m.end()) if m else ("", j)

    access, i = word(i)
    if not access:
        return fields
    fields.append(access)
    sectors, i = number(i)
    if not sectors:
        return fields
    fields.append(sectors)
    etype, i = word(i)
    if not etype:
        return fields
    fields.append(etype)
    i = skip(i)
    if i >= n or text[i] != '"':
        return fields
    k = i + 1
    while k < n and k - i - 1 < 511 and text[k] not in '\n\r"':
        k += 1
    if k == i + 1:
        return fields
    fields.append(text[i + 1 : k])
    if k >= n or text[k] != '"':
        return fields
    offset, _ = number(k + 1)
    if offset:
        fields.append(offset)
    return fields


def _extent_lines(text: str) -> list[tuple[int, list[str]]]:
    """What qemu's scan of every line start yields, with how often it is counted.

    sscanf skips leading whitespace, newlines included, so a blank line reads the next
    non-blank line: qemu counts an extent line once more for every blank line before it.
    """
    out: list[tuple[int, list[str]]] = []
    pending = 0
    pos = 0
    for line in text.split("\n"):
        if line.strip(_WS):
            out.append((1 + pending, _scan_extent(text, pos)))
            pending = 0
        else:
            pending += 1
        pos += len(line) + 1
    return out


def _parse_descriptor(text: str, src: Source) -> ImageInfo:
    create = _desc_value(text, "createType")
    problems: list[str] = []
    if create is None:
        problems.append("descriptor has no createType")
    elif create not in _DESC_TYPES:
        problems.append(f"unsupported descriptor createType {create!r}")
    sectors = 0
    extra: list[str] = []
    for times, fields in _extent_lines(text):
        matches = len(fields)
        if matches < 4 or fields[0] != "RW":  # qemu ignores all but read-write extents
            continue
        count, etype, name = int(fields[1]), fields[2], fields[3]
        valid = (matches == 5 and int(fields[4]) >= 0) if etype == "FLAT" else matches == 4
        if not valid:
            problems.append(f"invalid extent line {' '.join(fields)[:80]!r}")
            continue
        if count <= 0 or etype not in _EXTENT_TYPES:
            continue
        path = resolve(name, src.path)
        if path is None:
            continue
        sectors += count * times
        if path not in extra:
            extra.append(path)
        if not os.path.exists(path):
            problems.append(f"extent file {name!r} is missing")
    if not extra and not problems:
        problems.append("descriptor lists no usable extents")
    if not _cids_ok(text):
        problems.append("descriptor has no readable CID/parentCID")
    backing, perr = _parent(text, src)
    if perr:
        problems.append(perr)
    return ImageInfo(
        format="vmdk",
        capacity=sectors * 512,
        backing=backing,
        extra_files=tuple(extra),
        subformat=create,
        corrupt="; ".join(problems) or None,
    )


def parse_descriptor_file(src: Source) -> ImageInfo:
    if src.size > _MAX_DESC:
        return ImageInfo("vmdk", 0, corrupt="vmdk descriptor larger than 1 MiB")
    data = src.read(0, src.size, limit=_MAX_DESC)
    text = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return _parse_descriptor(text, src)


def _check_sparse(capacity: int, granularity: int, gtes: int, problems: list[str]) -> None:
    if gtes > 512:
        problems.append("L2 table size too big")
    elif granularity > 0x200000:
        problems.append("invalid grain size")
    elif gtes * granularity == 0:
        problems.append("L1 entry size is invalid")
    elif -(-capacity // (gtes * granularity)) > 512 * 1024 * 1024:
        problems.append("L1 size too big (virtual size out of range)")


def parse_kdmv(src: Source) -> ImageInfo:
    h = src.head
    problems: list[str] = []
    if le64(h, 56) == _GD_AT_END:
        # Header copy at EOF-1024, between a footer marker and an end-of-stream marker.
        try:
            tail = src.tail(1536)
        except Truncated:
            tail = b""
        if (
            len(tail) == 1536
            and tail[512:516] == KDMV
            and le32(tail, 8) == 0
            and le32(tail, 12) == 3
            and le64(tail, 1024) == 0
        ):
            h = tail[512:1024]
        else:
            problems.append("invalid stream footer")
    version = le32(h, 4)
    flags = le32(h, 8)
    capacity_sectors = le64(h, 12)
    granularity = le64(h, 20)
    gtes = le32(h, 44)
    overhead = le64(h, 64)
    if version > 3:
        problems.append(f"unsupported VMDK version {version}")
    _check_sparse(capacity_sectors, granularity, gtes, problems)
    if overhead * 512 > src.size:
        problems.append("file truncated (grain data offset past the end)")
    capacity = capacity_sectors * 512
    # qemu reads the embedded descriptor at sector 1 (20 sectors) whatever the header says.
    raw = src.head[_DESC_AT : _DESC_AT + _DESC_LEN]
    text = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if not text.strip():
        # The extents of a split image carry an empty descriptor area (or none at all).
        problems.insert(0, "sparse extent without a descriptor (part of a split vmdk)")
        return ImageInfo(
            format="vmdk",
            capacity=capacity,
            cluster_size=granularity * 512 or None,
            subformat="extent",
            corrupt="; ".join(problems),
        )
    if not _cids_ok(text):
        problems.append("descriptor has no readable CID/parentCID")
    backing, perr = _parent(text, src)
    if perr:
        problems.append(perr)
    create = _desc_value(text, "createType")
    if create is None:
        create = "streamOptimized" if flags & (1 << 16) else "monolithicSparse"
    return ImageInfo(
        format="vmdk",
        capacity=capacity,
        backing=backing,
        cluster_size=granularity * 512 or None,
        subformat=create,
        corrupt="; ".join(problems) or None,
    )


def parse_cowd(src: Source) -> ImageInfo:
    h = src.head
    sectors = le32(h, 12)
    granularity = le32(h, 16)
    problems: list[str] = []
    if granularity > 0x200000 or granularity == 0:
        problems.append("invalid grain size")
    return ImageInfo(
        format="vmdk",
        capacity=sectors * 512,
        cluster_size=granularity * 512 or None,
        subformat="vmfsSparse",
        corrupt="; ".join(problems) or None,
    )
