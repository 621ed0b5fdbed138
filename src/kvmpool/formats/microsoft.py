"""Microsoft VHD (qemu: vpc) and VHDX.

VHD: a 512-byte big-endian footer (``conectix``) at the end of the file, with a copy at
offset 0 in dynamic and differencing disks; fixed disks have the footer only at the end.
qemu's own probe looks only at offset 0, so ``qemu-img info`` calls a fixed VHD raw unless
told ``-f vpc``; we report vpc (the footer checksum must match, so random data ending in
``conectix`` stays raw). Capacity follows qemu: CHS geometry for Virtual PC and old qemu
images, ``current_size`` for Hyper-V, Disk2vhd, XenServer, qemu's ``force_size`` and disks
at the CHS maximum.

VHDX: little-endian; two headers at 64 and 128 KiB (the valid one with the higher
sequence wins), a region table at 192 KiB pointing at the metadata region, whose items
give the virtual size and the fixed/has-parent flags. GUIDs are stored mixed-endian.
Headers and region table carry CRC-32C checksums, which qemu verifies and so do we; a log
with entries for the current log GUID must be replayed before qemu opens the image.
"""

from __future__ import annotations

import uuid

from kvmpool.formats._buf import Source, Truncated, be16, be32, be64, le16, le32, le64
from kvmpool.formats._crc import crc32c
from kvmpool.formats.info import ImageInfo

VPC_COOKIE = b"conectix"
VHDX_MAGIC = b"vhdxfile"

_CURRENT_SIZE_CREATORS = {b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0"}
_VHD_MAX_GEOMETRY = 65535 * 16 * 255
_VHD_MAX_SECTORS = 0xFF000000
_VHD_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}


def vpc_checksum_ok(footer: bytes) -> bool:
    stored = be32(footer, 64)
    total = sum(footer[:64]) + sum(footer[68:512])
    return (~total & 0xFFFFFFFF) == stored


def parse_vpc(src: Source, footer: bytes, *, at_end: bool) -> ImageInfo:
    problems: list[str] = []
    if not vpc_checksum_ok(footer):
        problems.append("incorrect footer checksum")
    cyls = be16(footer, 56)
    heads = footer[58]
    secs = footer[59]
    sectors = cyls * heads * secs
    creator = footer[28:32]
    if creator in _CURRENT_SIZE_CREATORS or sectors == _VHD_MAX_GEOMETRY:
        sectors = be64(footer, 48) // 512
    disk_type = be32(footer, 60)
    subformat = _VHD_TYPES.get(disk_type, f"type-{disk_type}")
    if sectors > _VHD_MAX_SECTORS:
        problems.append("virtual size larger than 2040 GiB")
    cluster: int | None = None
    if at_end:
        subformat = "fixed"  # qemu treats a footer-only file as fixed whatever it says
    else:
        # qemu reads any footer at offset 0 as dynamic and needs the sparse header.
        try:
            dyn = src.read(be64(footer, 16), 512)
        except Truncated:
            dyn = b""
        if dyn[:8] != b"cxsparse":
            problems.append("invalid dynamic header")
        else:
            block = be32(dyn, 32)
            entries = be32(dyn, 28)
            if block < 512 or block & (block - 1):
                problems.append(f"invalid block size {block}")
            else:
                cluster = block
                if sectors * 512 // block > 0xFFFFFFFF:
                    problems.append("too many blocks")
                elif entries * block < sectors * 512:
                    problems.append("block allocation table too small")
            if entries > (2**31 - 1) // 4:
                problems.append(f"max table entries too large ({entries})")
            elif be64(dyn, 16) + entries * 4 > src.size:
                # qemu also checks every BAT entry; that would mean reading the whole table.
                problems.append("block allocation table runs past the end (truncated image)")
    return ImageInfo(
        format="vpc",
        capacity=sectors * 512,
        cluster_size=cluster,
        subformat=subformat,
        corrupt="; ".join(problems) or None,
    )


# ---------------------------------------------------------------- vhdx

_REGION_METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
_ITEM_FILE_PARAMS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
_ITEM_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
_ITEM_LOGICAL_SECTOR = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
_NULL_GUID = bytes(16)
_MAX_LOG_SCAN = 16 << 20


def _header_ok(block: bytes) -> bool:
    if len(block) < 4096 or block[:4] != b"head" or le16(block, 66) != 1:
        return False
    return crc32c(block[:4] + b"\0\0\0\0" + block[8:4096]) == le32(block, 4)


def _pick_header(h1: bytes, h2: bytes) -> bytes | None:
    """qemu's rule: the valid header with the higher sequence; equal ones must be identical."""
    ok1, ok2 = _header_ok(h1), _header_ok(h2)
    if ok1 and ok2:
        s1, s2 = le64(h1, 8), le64(h2, 8)
        if s1 == s2:
            return h1 if h1[:80] == h2[:80] else None
        return h1 if s1 > s2 else h2
    return h1 if ok1 else (h2 if ok2 else None)


def _overlaps(regions: list[tuple[int, int]], start: int, length: int) -> bool:
    end = start + length
    return any(not (start >= r_end or end <= r_start) for r_start, r_end in regions)


_REGION_BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
_ITEM_PAGE83 = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
_ITEM_PHYSICAL_SECTOR = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
_ITEM_PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
_REQUIRED_ITEMS = {
    _ITEM_FILE_PARAMS,
    _ITEM_DISK_SIZE,
    _ITEM_PAGE83,
    _ITEM_LOGICAL_SECTOR,
    _ITEM_PHYSICAL_SECTOR,
}
_KNOWN_ITEMS = _REQUIRED_ITEMS | {_ITEM_PARENT_LOCATOR}


def _bad(reason: str, size: int = 0, block: int | None = None) -> ImageInfo:
    return ImageInfo("vhdx", size, cluster_size=block, corrupt=reason)


def parse_vhdx(src: Source) -> ImageInfo:
    """The checks qemu makes on open, short of reading the whole block allocation table."""
    if src.size < (256 << 10):
        return _bad("file too small for VHDX headers")
    area = src.read(64 << 10, 192 << 10)  # headers at 64 and 128 KiB, region table at 192 KiB
    hdr = _pick_header(area[: 4 << 10], area[64 << 10 : 68 << 10])
    if hdr is None:
        return _bad("no valid VHDX header")
    regions = [(0, 1 << 20)]  # the header section
    log_guid, log_len, log_off = hdr[48:64], le32(hdr, 68), le64(hdr, 72)
    regions.append((log_off, log_off + log_len))

    table = area[128 << 10 :]
    if table[:4] != b"regi" or crc32c(table[:4] + bytes(4) + table[8:]) != le32(table, 4):
        return _bad("invalid VHDX region table")
    count = le32(table, 8)
    if count > 2047:
        return _bad("too many VHDX region table entries")
    found: dict[uuid.UUID, tuple[int, int]] = {}
    for i in range(count):
        e = 16 + 32 * i
        guid = uuid.UUID(bytes_le=table[e : e + 16])
        start, length, flags = le64(table, e + 16), le32(table, e + 24), le32(table, e + 28)
        if _overlaps(regions, start, length):
            return _bad("overlapping VHDX regions")
        regions.append((start, start + length))
        if guid in (_REGION_BAT, _REGION_METADATA):
            if guid in found:
                return _bad("duplicate VHDX region")
            found[guid] = (start, length)
        elif flags & 1:
            return _bad("unknown required VHDX region")
    if _REGION_BAT not in found or _REGION_METADATA not in found:
        return _bad("VHDX BAT or metadata region missing")

    meta_off, meta_len = found[_REGION_METADATA]
    meta = src.read(meta_off, 64 << 10)
    if meta[:8] != b"metadata":
        return _bad("invalid VHDX metadata table")
    entries = le16(meta, 10)
    if entries * 32 > (64 << 10) - 32:
        return _bad("too many VHDX metadata entries")
    items: dict[uuid.UUID, int] = {}
    for i in range(entries):
        e = 32 + 32 * i
        guid = uuid.UUID(bytes_le=meta[e : e + 16])
        if guid in _KNOWN_ITEMS:
            if guid in items:
                return _bad("duplicate VHDX metadata item")
            items[guid] = le32(meta, e + 16)
        elif le32(meta, e + 24) & 4:
            return _bad("unknown required VHDX metadata item")
    if not items.keys() >= _REQUIRED_ITEMS:
        return _bad("required VHDX metadata item missing")

    # The items usually sit together (at 64 KiB into the region): one read for all.
    lo = min(items[g] for g in _REQUIRED_ITEMS)
    hi = max(items[g] for g in _REQUIRED_ITEMS) + 8
    span = meta[lo:hi] if hi <= len(meta) else src.read(meta_off + lo, hi - lo, limit=meta_len)

    def item(guid: uuid.UUID, code: str) -> int:
        off = items[guid] - lo
        return le64(span, off) if code == "Q" else le32(span, off)

    size = item(_ITEM_DISK_SIZE, "Q")
    block = item(_ITEM_FILE_PARAMS, "I")
    flags = le32(span, items[_ITEM_FILE_PARAMS] - lo + 4)
    sector = item(_ITEM_LOGICAL_SECTOR, "I")
    capacity = size - size % 512
    subformat = "fixed" if flags & 1 else "dynamic"
    if flags & 2:
        subformat = "differencing"
        reason = "differencing VHDX (qemu does not support parents)"
        if _ITEM_PARENT_LOCATOR not in items:
            reason = "differencing VHDX without a parent locator"
        return ImageInfo("vhdx", capacity, cluster_size=block, subformat=subformat, corrupt=reason)
    if not (1 << 20) <= block <= (256 << 20) or block & (block - 1):
        return _bad(f"invalid VHDX block size {block}", capacity)
    if sector not in (512, 4096):
        return _bad(f"invalid VHDX logical sector size {sector}", capacity, block)
    chunk_ratio = (1 << 23) * sector // block
    if chunk_ratio & (chunk_ratio - 1):
        return _bad("invalid VHDX chunk ratio", capacity, block)

    problems: list[str] = []
    if le16(hdr, 64) != 0:
        problems.append("unsupported VHDX log version")
    elif log_guid != _NULL_GUID and log_len:
        if log_len % 4096:
            problems.append("invalid VHDX log length")
        else:
            # Rare (an unclean shutdown): look for a log entry that belongs to this log.
            try:
                log = src.read(log_off, min(log_len, _MAX_LOG_SCAN), limit=_MAX_LOG_SCAN)
            except Truncated:
                log = b""
                problems.append("log lies past the end of the file")
            for off in range(0, len(log) - 47, 4096):
                if log[off : off + 4] == b"loge" and log[off + 32 : off + 48] == log_guid:
                    problems.append("log needs replay (qemu-img check -r all)")
                    break
    data_blocks = -(-size // block)
    bat_entries = data_blocks + ((data_blocks - 1) >> (chunk_ratio.bit_length() - 1))
    if bat_entries * 8 > found[_REGION_BAT][1]:
        problems.append("VHDX block allocation table too small for the virtual size")
    return ImageInfo(
        format="vhdx",
        capacity=capacity,
        cluster_size=block,
        subformat=subformat,
        corrupt="; ".join(problems) or None,
    )
