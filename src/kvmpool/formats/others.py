"""The remaining single-header formats: vdi, parallels, luks, iso, dmg, bochs, cloop, raw.

Facts per format are in docs/image-formats.md §1.8-1.12; sanity limits mirror the checks
qemu makes on open so that images qemu refuses are reported ``corrupt``.
"""

from __future__ import annotations

from kvmpool.formats import luks
from kvmpool.formats._buf import Source, Truncated, be16, be32, be64, cstr, le32, le64
from kvmpool.formats.info import ImageInfo

VDI_SIGNATURE = 0xBEDA107F
PARALLELS_MAGICS = (b"WithoutFreeSpace", b"WithouFreSpacExt")
_PARALLELS_EXT_MAGIC = 0xAB234CEF23DCEA87
LUKS_MAGIC = b"LUKS\xba\xbe"
BOCHS_MAGIC = b"Bochs Virtual HD Image"
CLOOP_MAGIC = (
    b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
)
ISO_MAGIC_OFFSET = 0x8001
ISO_MAGIC = b"CD001"
DMG_MAGIC = b"koly"


def ceil512(n: int) -> int:
    return -(-n // 512) * 512


def _join(problems: list[str]) -> str | None:
    return "; ".join(problems) or None


def parse_raw(src: Source, fmt: str = "raw") -> ImageInfo:
    # qemu rounds a raw file's length up to whole sectors.
    return ImageInfo(format=fmt, capacity=ceil512(src.size))


# ---------------------------------------------------------------- vdi

_VDI_TYPES = {1: "dynamic", 2: "static", 3: "undo", 4: "differencing"}
_VDI_BLOCKS_MAX = (2**31 - 512) // 4


def is_vdi(head: bytes) -> bool:
    return len(head) >= 512 and le32(head, 0x40) == VDI_SIGNATURE


def parse_vdi(src: Source) -> ImageInfo:
    h = src.head
    version = le32(h, 0x44)
    image_type = le32(h, 0x4C)
    size = ceil512(le64(h, 0x170))  # qemu rounds odd VirtualBox sizes up
    problems: list[str] = []
    if version != 0x00010001:
        problems.append(f"unsupported VDI version {version >> 16}.{version & 0xFFFF}")
        return ImageInfo("vdi", 0, subformat=_VDI_TYPES.get(image_type), corrupt=_join(problems))
    block = le32(h, 0x178)
    blocks = le32(h, 0x180)
    if le32(h, 0x154) % 512 or le32(h, 0x158) % 512:
        problems.append("misaligned bitmap or data offset")
    if le32(h, 0x168) != 512:
        problems.append("sector size is not 512")
    if block != 1 << 20:
        problems.append(f"unsupported block size {block}")
    if blocks > _VDI_BLOCKS_MAX:
        problems.append("too many blocks")
    if size > blocks * block:
        problems.append("disk size larger than the block map")
    if h[0x1A8:0x1B8] != bytes(16):
        problems.append("non-null link UUID")
    if h[0x1B8:0x1C8] != bytes(16):
        problems.append("non-null parent UUID (differencing VDI)")
    return ImageInfo(
        format="vdi",
        capacity=size,
        cluster_size=block or None,
        subformat=_VDI_TYPES.get(image_type, f"type-{image_type}"),
        corrupt=_join(problems),
    )


# ---------------------------------------------------------------- parallels


def is_parallels(head: bytes) -> bool:
    return len(head) >= 64 and head[:16] in PARALLELS_MAGICS and le32(head, 16) == 2


def parse_parallels(src: Source) -> ImageInfo:
    h = src.head
    tracks = le32(h, 28)
    bat = le32(h, 32)
    sectors = le64(h, 36)
    if h[:16] == PARALLELS_MAGICS[0]:
        sectors &= 0xFFFFFFFF  # the old format has a 32-bit sector count
    problems: list[str] = []
    if le32(h, 16) != 2:
        problems.append("unsupported parallels version")
    if tracks == 0:
        problems.append("zero sectors per cluster")
    elif tracks > (2**31 - 1) // 513:
        problems.append("cluster too big")
    if bat > (2**31 - 1) // 4:
        problems.append("block allocation table too large")
    ext_off = le64(h, 56)
    if ext_off:
        # qemu reads the format extension (dirty bitmaps) on a read-only open.
        try:
            magic = le64(src.read(ext_off * 512, 8), 0)
        except Truncated:
            magic = 0
        if magic != _PARALLELS_EXT_MAGIC:
            problems.append("bad format extension magic")
    return ImageInfo(
        format="parallels",
        capacity=sectors * 512,
        cluster_size=tracks * 512 or None,
        subformat="old" if h[:16] == PARALLELS_MAGICS[0] else None,
        corrupt=_join(problems),
    )


# ---------------------------------------------------------------- luks


def parse_luks(src: Source) -> ImageInfo:
    h = src.head
    version = be16(h, 6)
    if version != 1:
        return ImageInfo(
            "luks",
            ceil512(src.size),
            encryption="luks",
            subformat=f"luks{version}",
            corrupt=f"LUKS version {version} (qemu opens only LUKS1)",
        )
    if len(h) < luks.HEADER_LEN:
        raise Truncated("LUKS header is 592 bytes")
    payload = be32(h, 104) * 512
    problems = luks.header_problems(h)
    if payload > src.size:
        problems.append("LUKS payload offset lies past the end")
        return ImageInfo("luks", 0, encryption="luks", corrupt=_join(problems))
    return ImageInfo(
        format="luks",
        capacity=ceil512(src.size - payload),
        encryption="luks",
        corrupt=_join(problems),
    )


# ---------------------------------------------------------------- iso, dmg


def is_iso(head: bytes) -> bool:
    return head[ISO_MAGIC_OFFSET : ISO_MAGIC_OFFSET + 5] == ISO_MAGIC


def parse_dmg(src: Source, trailer: bytes) -> ImageInfo:
    if trailer[:4] != DMG_MAGIC:
        return ImageInfo("dmg", 0, corrupt="no koly trailer")
    sectors = be64(trailer, 0x1EC)
    problems: list[str] = []
    if sectors * 512 > (1 << 63) - 1:
        problems.append("sector count out of range")
    return ImageInfo(format="dmg", capacity=sectors * 512, corrupt=_join(problems))


# ---------------------------------------------------------------- bochs, cloop


def is_bochs(head: bytes) -> bool:
    return (
        len(head) >= 512
        and cstr(head[0:32]) == BOCHS_MAGIC.decode()
        and cstr(head[32:48]) == "Redolog"
        and cstr(head[48:64]) == "Growing"
        and le32(head, 64) in (0x00010000, 0x00020000)
    )


def parse_bochs(src: Source) -> ImageInfo:
    h = src.head
    v1 = le32(h, 64) == 0x00010000
    size = le64(h, 84 if v1 else 88)
    capacity = size - size % 512
    catalog = le32(h, 72)
    extent = le32(h, 80)
    problems: list[str] = []
    if catalog > 0x100000:
        problems.append("catalog too large")
    if extent < 512 or extent & (extent - 1) or extent > 0x800000:
        problems.append(f"invalid extent size {extent}")
    elif catalog < -(-(capacity // 512) // (extent // 512)):
        problems.append("catalog too small for the disk size")
    return ImageInfo(
        format="bochs",
        capacity=capacity,
        subformat="v1" if v1 else None,
        corrupt=_join(problems),
    )


def is_cloop(head: bytes) -> bool:
    n = min(len(head), len(CLOOP_MAGIC))
    return n > 0 and head[:n] == CLOOP_MAGIC[:n]


def parse_cloop(src: Source) -> ImageInfo:
    h = src.head
    if len(h) < 136:
        raise Truncated("cloop header is 136 bytes")
    block = be32(h, 128)
    blocks = be32(h, 132)
    problems: list[str] = []
    if block == 0 or block % 512 or block > 64 << 20:
        problems.append(f"invalid block size {block}")
    if blocks > 0xFFFFFFFF // 8 or (blocks + 1) * 8 > 512 << 20:
        problems.append("too many blocks")
    return ImageInfo(
        format="cloop",
        capacity=blocks * block,
        cluster_size=block or None,
        corrupt=_join(problems),
    )
