"""Header parsers on tiny images built byte by byte in the test (no qemu-img needed)."""

from __future__ import annotations

import os
import struct
import uuid
from pathlib import Path

import pytest

from kvmpool.formats import BackingRef, ImageInfo, probe, probe_fd, qemu_format
from kvmpool.formats._crc import crc32c
from kvmpool.formats._paths import is_protocol, resolve

MiB = 1 << 20


def write(path: Path, data: bytes, size: int | None = None) -> str:
    path.write_bytes(data)
    if size is not None and size > len(data):
        os.truncate(path, size)
    return str(path)


# ---------------------------------------------------------------- builders


def qcow2(
    size: int = 64 * MiB,
    *,
    version: int = 3,
    cluster_bits: int = 16,
    backing: bytes | None = None,
    backing_fmt: bytes | None = None,
    crypt: int = 0,
    incompat: int = 0,
    compat: int = 0,
    compression: int | None = None,
    data_file: bytes | None = None,
    l1_size: int | None = None,
    extra_ext: bytes = b"",
) -> bytes:
    cluster = 1 << cluster_bits
    if l1_size is None:
        l2_entries = cluster // (16 if incompat & 16 else 8)
        l1_size = min(0xFFFFFFFF, max(1, -(-size // (cluster * l2_entries))))
    header_length = 104 if compression is None else 112
    hdr_len = 72 if version == 2 else header_length
    exts = b""

    def ext(etype: int, data: bytes) -> bytes:
        return struct.pack(">II", etype, len(data)) + data + bytes(-len(data) % 8)

    if backing_fmt is not None:
        exts += ext(0xE2792ACA, backing_fmt)
    if crypt == 2:
        exts += ext(0x0537BE77, struct.pack(">QQ", 3 * cluster, 4096))
    if data_file is not None:
        exts += ext(0x44415441, data_file)
    exts += extra_ext + struct.pack(">II", 0, 0)
    backing_off = hdr_len + len(exts) if backing else 0
    h = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",
        version,
        backing_off,
        len(backing or b""),
        cluster_bits,
        size,
        crypt,
        l1_size,
        3 * cluster,
        cluster,
        1,
        0,
        0,
    )
    if version == 3:
        h += struct.pack(">QQQII", incompat, compat, 0, 4, header_length)
        if compression is not None:
            h += bytes([compression]) + bytes(7)
    h += exts + (backing or b"")
    if crypt == 2:  # the LUKS header the encryption extension points at
        h += bytes(3 * cluster - len(h)) + luks()
    return h + bytes(-len(h) % 512)


def qcow1(size: int, backing: bytes = b"", crypt: int = 0) -> bytes:
    off = 48 if backing else 0
    h = struct.pack(">4sIQIIQBBHIQ", b"QFI\xfb", 1, off, len(backing), 0, size, 12, 9, 0, crypt, 0)
    return h + backing + bytes(512 - len(h) - len(backing))


def qed(
    size: int, *, backing: bytes = b"", raw_backing: bool = False, cluster: int = 4096
) -> bytes:
    features = (1 if backing else 0) | (4 if raw_backing else 0)
    # header cluster, then a 4-cluster L1 table
    h = struct.pack(
        "<4sIIIQQQQQII",
        b"QED\0",
        cluster,
        4,
        1,
        features,
        0,
        0,
        cluster,
        size,
        64 if backing else 0,
        len(backing),
    )
    return h + backing + bytes(5 * max(cluster, 4096) - len(h) - len(backing))


def vpc_footer(
    current: int, cyls: int, heads: int, secs: int, *, creator: bytes = b"vpc ", disk_type: int = 3
) -> bytes:
    f = bytearray(512)
    struct.pack_into(
        ">8sIIQI4sI4sQQHBBI",
        f,
        0,
        b"conectix",
        2,
        0x10000,
        512 if disk_type != 2 else 0xFFFFFFFFFFFFFFFF,
        0,
        creator,
        0x10000,
        b"Wi2k",
        current,
        current,
        cyls,
        heads,
        secs,
        disk_type,
    )
    struct.pack_into(">I", f, 64, ~sum(f) & 0xFFFFFFFF)
    return bytes(f)


def vpc_dynamic(footer: bytes, *, block: int = 2 * MiB, entries: int | None = None) -> bytes:
    current = struct.unpack(">Q", footer[48:56])[0]
    if entries is None:
        entries = -(-current // block)
    dyn = bytearray(1024)
    struct.pack_into(
        ">8sQQIII", dyn, 0, b"cxsparse", 0xFFFFFFFFFFFFFFFF, 1536, 0x10000, entries, block
    )
    return footer + bytes(dyn) + bytes(512) + footer


def vdi(size: int, *, image_type: int = 1, parent: bytes = bytes(16)) -> bytes:
    h = bytearray(512)
    h[0:40] = b"<<< Oracle VM VirtualBox Disk Image >>>\n"
    struct.pack_into("<IIII", h, 0x40, 0xBEDA107F, 0x00010001, 0x180, image_type)
    blocks = -(-size // MiB)
    struct.pack_into(
        "<IIIIIIIQIIII", h, 0x154, 512, 1024 * 1024, 0, 0, 0, 512, 0, size, MiB, 0, blocks, 0
    )
    h[0x1B8:0x1C8] = parent
    return bytes(h)


def parallels(sectors: int, *, old: bool = False, tracks: int = 2048) -> bytes:
    magic = b"WithoutFreeSpace" if old else b"WithouFreSpacExt"
    h = struct.pack("<16sIIIIIQIII", magic, 2, 16, 1, tracks, 1, sectors, 0, 1, 0)
    return h + bytes(512 - len(h))


def luks(
    payload_sectors: int = 4040,
    version: int = 1,
    *,
    key_bytes: int = 64,
    cipher: bytes = b"aes",
    mode: bytes = b"xts-plain64",
    hash_: bytes = b"sha256",
) -> bytes:
    h = bytearray(592)
    h[0:6] = b"LUKS\xba\xbe"
    struct.pack_into(">H", h, 6, version)
    h[8 : 8 + len(cipher)] = cipher
    h[40 : 40 + len(mode)] = mode
    h[72 : 72 + len(hash_)] = hash_
    struct.pack_into(">II", h, 104, payload_sectors, key_bytes)
    struct.pack_into(">I", h, 164, 1000)
    for i in range(8):
        state, iters = (0x00AC71F3, 5000) if i == 0 else (0x0000DEAD, 0)
        struct.pack_into(">II", h, 208 + 48 * i, state, iters)
        struct.pack_into(">II", h, 208 + 48 * i + 40, 8 + 504 * i, 4000)
    return bytes(h)


def vmdk4(
    capacity_sectors: int, *, descriptor: bytes | None = None, gd: int = 21, version: int = 1
) -> bytes:
    h = bytearray(512)
    desc_off, desc_size = (1, 20) if descriptor is not None else (0, 0)
    struct.pack_into(
        "<4sIIQQQQIQQQB4sH",
        h,
        0,
        b"KDMV",
        version,
        3,
        capacity_sectors,
        128,
        desc_off,
        desc_size,
        512,
        0,
        gd,
        128,
        0,
        b"\n \r\n",
        0,
    )
    body = bytearray(128 * 512)
    if descriptor is not None:
        body[512 : 512 + len(descriptor)] = descriptor
    body[:512] = h
    return bytes(body)


def descriptor(create: str, extents: list[str], parent: str | None = None) -> bytes:
    lines = [
        "# Disk DescriptorFile",
        "version=1",
        "CID=12345678",
        f"parentCID={'ffffffff' if parent is None else '87654321'}",
        f'createType="{create}"',
    ]
    if parent is not None:
        lines.append(f'parentFileNameHint="{parent}"')
    lines += ["", "# Extent description", *extents, "", "# The Disk Data Base", "#DDB", ""]
    return "\n".join(lines).encode()


def vhdx(
    size: int,
    *,
    fixed: bool = False,
    parent: bool = False,
    log_guid: bytes = bytes(16),
    block: int = 32 * MiB,
    sector: int = 512,
    bat_len: int = MiB,
) -> bytes:
    """Headers, region table, log at 1 MiB, metadata at 2 MiB; the BAT (3 MiB) is not stored."""
    img = bytearray(2 * MiB + 64 * 1024)
    img[0:8] = b"vhdxfile"
    for i, off in enumerate((64 << 10, 128 << 10)):
        hdr = bytearray(4096)
        struct.pack_into("<4sIQ", hdr, 0, b"head", 0, 10 + i)
        hdr[48:64] = log_guid
        struct.pack_into("<HHIQ", hdr, 64, 0, 1, 64 * 1024, MiB)  # log: 64 KiB at 1 MiB
        struct.pack_into("<I", hdr, 4, crc32c(bytes(hdr)))
        img[off : off + 4096] = hdr
    meta = 2 * MiB
    region = bytearray(64 * 1024)
    struct.pack_into("<4sIII", region, 0, b"regi", 0, 2, 0)
    region[16:32] = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08").bytes_le
    struct.pack_into("<QII", region, 32, 3 * MiB, bat_len, 1)
    region[48:64] = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
    struct.pack_into("<QII", region, 64, meta, 64 * 1024, 1)
    struct.pack_into("<I", region, 4, crc32c(bytes(region)))
    img[192 << 10 : 256 << 10] = region
    table = bytearray(64 * 1024)
    table[0:8] = b"metadata"
    items = [
        ("2FA54224-CD1B-4876-B211-5DBED83BF4B8", struct.pack("<Q", size)),
        (
            "CAA16737-FA36-4D43-B3B6-33F0AA44E76B",
            struct.pack("<II", block, (1 if fixed else 0) | (2 if parent else 0)),
        ),
        ("8141BF1D-A96F-4709-BA47-F233A8FAAB5F", struct.pack("<I", sector)),
        ("CDA348C7-445D-4471-9CC9-E9885251C556", struct.pack("<I", 4096)),
        ("BECA12AB-B2E6-4523-93EF-C309E000C746", bytes(16)),
    ]
    struct.pack_into("<HH", table, 8, 0, len(items))
    data_off = 4096
    for i, (guid, data) in enumerate(items):
        e = 32 + 32 * i
        table[e : e + 16] = uuid.UUID(guid).bytes_le
        struct.pack_into("<III", table, e + 16, data_off, len(data), 4)
        table[data_off : data_off + len(data)] = data
        data_off += 64
    img[meta : meta + len(table)] = table
    return bytes(img)


def bochs(size: int, *, v1: bool = False) -> bytes:
    h = bytearray(512)
    h[0:22] = b"Bochs Virtual HD Image"
    h[32:39] = b"Redolog"
    h[48:55] = b"Growing"
    extent = 4096
    catalog = -(-size // extent)
    if v1:
        struct.pack_into("<IIIIIQ", h, 64, 0x00010000, 512, catalog, 1, extent, size)
    else:
        struct.pack_into("<IIIIIIQ", h, 64, 0x00020000, 512, catalog, 1, extent, 0, size)
    return bytes(h)


CLOOP_HEAD = (
    b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
)


def cloop(block: int, blocks: int) -> bytes:
    h = bytearray(136)
    h[: len(CLOOP_HEAD)] = CLOOP_HEAD
    struct.pack_into(">II", h, 128, block, blocks)
    return bytes(h) + bytes(8 * (blocks + 1))


def cow(size: int, backing: bytes = b"") -> bytes:
    h = bytearray(1048)
    struct.pack_into(">4sI", h, 0, b"OOOM", 2)
    h[8 : 8 + len(backing)] = backing
    struct.pack_into(">Q", h, 1036, size)
    return bytes(h)


def koly(sectors: int) -> bytes:
    t = bytearray(512)
    t[0:4] = b"koly"
    struct.pack_into(">I", t, 4, 4)
    struct.pack_into(">Q", t, 0x1EC, sectors)
    return bytes(t)


# ---------------------------------------------------------------- qcow2


def test_qcow2_v3_basic(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "a.qcow2", qcow2(64 * MiB)))
    assert info == ImageInfo(
        format="qcow2",
        capacity=64 * MiB,
        compat="1.1",
        cluster_size=65536,
        compression_type="zlib",
    )


def test_qcow2_v2_and_features(tmp_path: Path) -> None:
    v2 = probe(write(tmp_path / "v2", qcow2(MiB, version=2)))
    assert (v2.format, v2.compat, v2.lazy_refcounts) == ("qcow2", "0.10", False)
    v3 = probe(
        write(
            tmp_path / "v3", qcow2(MiB, cluster_bits=17, incompat=16 | 8, compat=1, compression=1)
        )
    )
    assert v3.corrupt is None
    assert (v3.lazy_refcounts, v3.extended_l2, v3.compression_type) == (True, True, "zstd")
    assert v3.cluster_size == 128 << 10


def test_qcow2_sector_rounding_follows_qemu(tmp_path: Path) -> None:
    # qemu keeps whole sectors of a qcow2 header size (1000 -> 512)
    assert probe(write(tmp_path / "a", qcow2(1000))).capacity == 512


def test_qcow2_backing_with_and_without_format(tmp_path: Path) -> None:
    with_fmt = probe(write(tmp_path / "o1", qcow2(MiB, backing=b"base.raw", backing_fmt=b"raw")))
    assert with_fmt.backing == BackingRef("base.raw", str(tmp_path / "base.raw"), "raw")
    legacy = probe(write(tmp_path / "o2", qcow2(MiB, backing=b"/abs/base.img")))
    assert legacy.backing == BackingRef("/abs/base.img", "/abs/base.img", None)


@pytest.mark.parametrize(
    "name",
    [
        b"nbd://host:10809/exp",
        b"nbd:unix:/run/x.sock",
        b"rbd:pool/img",
        b'json:{"a":1}',
        b"http://example.com/x.img",
    ],
)
def test_qcow2_network_backing_has_no_path(tmp_path: Path, name: bytes) -> None:
    info = probe(write(tmp_path / "o", qcow2(MiB, backing=name, backing_fmt=b"raw")))
    assert info.backing is not None and info.backing.path is None
    assert info.backing.raw == name.decode()


def test_paths() -> None:
    assert resolve("file:/x/y", "/a/b") == "/x/y"
    assert resolve("sub/dir:x", "/a/b") == "/a/sub/dir:x"  # colon after a slash: a path
    assert resolve("../c", "/a/b/img") == "/a/b/../c"
    assert is_protocol("nbd:localhost:10809") and not is_protocol("./a:b")


def test_qcow2_encryption(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "l", qcow2(MiB, crypt=2)))
    assert (info.encryption, info.corrupt) == ("luks", None)
    no_luks = bytearray(qcow2(MiB, crypt=2))
    no_luks[3 * 65536] = 0
    assert "no LUKS header" in (probe(write(tmp_path / "n", bytes(no_luks))).corrupt or "")
    assert probe(write(tmp_path / "a", qcow2(MiB, crypt=1))).encryption == "qcow"
    assert "encryption" in (probe(write(tmp_path / "x", qcow2(MiB, crypt=7))).corrupt or "")


def test_qcow2_data_file(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "d", qcow2(MiB, incompat=4, data_file=b"d.raw")))
    assert info.data_file == "d.raw" and info.extra_files == (str(tmp_path / "d.raw"),)
    missing = probe(write(tmp_path / "e", qcow2(MiB, incompat=4)))
    assert missing.corrupt is not None and missing.data_file is None


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"incompat": 1 << 9}, "unsupported incompatible"),
        ({"incompat": 2}, "marked corrupt"),
        ({"cluster_bits": 30}, "cluster size"),
        ({"size": 1 << 62}, "L1"),
        ({"l1_size": 0}, "L1 table is too small"),
        ({"version": 4}, "version"),
        ({"compression": 9, "incompat": 8}, "compression"),
        ({"compression": 1}, "incompatible bit"),
        ({"backing": b"x" * 2000, "backing_fmt": b"raw"}, "too long"),
        ({"backing_fmt": b"a-very-long-format-name"}, "backing format"),
        ({"l1_size": 1 << 30}, "L1"),
    ],
)
def test_qcow2_hostile_headers_are_corrupt(tmp_path: Path, kwargs: dict, reason: str) -> None:
    info = probe(write(tmp_path / "h", qcow2(**kwargs)))
    assert info.format == "qcow2"
    assert info.corrupt is not None and reason in info.corrupt


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "reason"),
    [
        (40, ">Q", 12345, "L1 table offset is invalid"),
        (40, ">Q", 1 << 63, "L1 table offset is invalid"),
        (48, ">Q", 512, "refcount table offset is invalid"),
        (64, ">Q", 512, "snapshot table offset is invalid"),
        (56, ">I", 1 << 20, "refcount table too large"),
        (60, ">I", 70000, "too many snapshots"),
    ],
)
def test_qcow2_table_checks(tmp_path: Path, offset: int, fmt: str, value: int, reason: str) -> None:
    data = bytearray(qcow2(MiB))
    struct.pack_into(fmt, data, offset, value)
    assert reason in (probe(write(tmp_path / "t", bytes(data))).corrupt or "")


def test_qcow2_extension_overrun_and_backing_past_eof(tmp_path: Path) -> None:
    bad_ext = qcow2(MiB, extra_ext=struct.pack(">II", 0x1234, 0xFFFFFF))
    assert "too large" in (probe(write(tmp_path / "a", bad_ext)).corrupt or "")
    data = bytearray(qcow2(MiB))
    struct.pack_into(">QI", data, 8, 60000, 100)  # name inside cluster 0 but past EOF
    info = probe(write(tmp_path / "b", bytes(data)))
    assert info.format == "qcow2" and "truncated" in (info.corrupt or "")


def test_qcow2_version_0_is_raw_like_qemu(tmp_path: Path) -> None:
    data = bytearray(qcow2(MiB))
    struct.pack_into(">I", data, 4, 0)
    assert probe(write(tmp_path / "z", bytes(data))).format == "raw"


# ---------------------------------------------------------------- qcow, qed, cow


def test_qcow1(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "q", qcow1(10 * MiB, b"base.img")))
    assert (info.format, info.capacity, info.cluster_size) == ("qcow", 10 * MiB, 4096)
    assert info.backing == BackingRef("base.img", str(tmp_path / "base.img"), None)
    assert probe(write(tmp_path / "e", qcow1(MiB, crypt=1))).encryption == "qcow"


def test_qed_backing_format_only_raw(tmp_path: Path) -> None:
    raw = probe(write(tmp_path / "a", qed(MiB, backing=b"b.raw", raw_backing=True)))
    assert raw.backing == BackingRef("b.raw", str(tmp_path / "b.raw"), "raw")
    other = probe(write(tmp_path / "b", qed(MiB, backing=b"b.qcow2")))
    assert other.backing is not None and other.backing.format is None
    assert probe(write(tmp_path / "c", qed(1000))).corrupt is not None  # not whole sectors
    assert probe(write(tmp_path / "d", qed(MiB, cluster=3000))).corrupt is not None
    assert probe(write(tmp_path / "e", qed(MiB))).corrupt is None
    short = qed(MiB)[: 3 * 4096]  # the L1 table runs past the end of the file
    assert "L1" in (probe(write(tmp_path / "f", short)).corrupt or "")


def test_cow(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "c", cow(5 * MiB, b"/srv/base.img")))
    assert (info.format, info.capacity) == ("cow", 5 * MiB)
    assert info.backing == BackingRef("/srv/base.img", "/srv/base.img", None)
    assert qemu_format("cow") is None


# ---------------------------------------------------------------- vmdk


def test_vmdk_monolithic_sparse_with_parent(tmp_path: Path) -> None:
    desc = descriptor("monolithicSparse", ['RW 2048 SPARSE "a.vmdk"'], parent="base.vmdk")
    info = probe(write(tmp_path / "a.vmdk", vmdk4(2048, descriptor=desc)))
    assert (info.format, info.capacity, info.subformat) == ("vmdk", MiB, "monolithicSparse")
    assert info.backing == BackingRef("base.vmdk", str(tmp_path / "base.vmdk"), "vmdk")
    assert info.corrupt is None


def test_vmdk_text_descriptors(tmp_path: Path) -> None:
    for name in ("x-f001.vmdk", "x-f002.vmdk"):
        (tmp_path / name).write_bytes(b"")
    desc = descriptor(
        "twoGbMaxExtentFlat",
        [
            'RW 4192256 FLAT "x-f001.vmdk" 0',
            'RW 2048 FLAT "x-f002.vmdk" 0',
            'RDONLY 100 FLAT "ignored.vmdk" 0',
            "RW 2048 ZERO",
        ],
    )
    info = probe(write(tmp_path / "x.vmdk", desc))
    assert (info.format, info.subformat) == ("vmdk", "twoGbMaxExtentFlat")
    assert info.capacity == (4192256 + 2048) * 512  # qemu counts RW data extents only
    assert info.extra_files == (str(tmp_path / "x-f001.vmdk"), str(tmp_path / "x-f002.vmdk"))
    assert info.corrupt is None
    missing = probe(
        write(tmp_path / "m.vmdk", descriptor("monolithicFlat", ['RW 8 FLAT "gone.vmdk" 0']))
    )
    assert "missing" in (missing.corrupt or "")
    bad = probe(write(tmp_path / "b.vmdk", descriptor("streamOptimized", [])))
    assert "createType" in (bad.corrupt or "")


def test_vmdk_descriptor_detection_follows_qemu(tmp_path: Path) -> None:
    assert probe(write(tmp_path / "a", b"# c\n\nversion=1\nfoo\n")).format == "vmdk"
    assert probe(write(tmp_path / "b", b"hello\nversion=1\n")).format == "raw"
    assert probe(write(tmp_path / "c", b"version=4\n")).format == "raw"


def test_vmdk_hostile(tmp_path: Path) -> None:
    huge = probe(write(tmp_path / "h", vmdk4(1 << 60, descriptor=descriptor("x", []))))
    assert huge.format == "vmdk" and "L1 size" in (huge.corrupt or "")
    extent = probe(write(tmp_path / "e", vmdk4(2048)))
    assert extent.subformat == "extent" and extent.corrupt is not None
    v9 = probe(write(tmp_path / "v", vmdk4(2048, descriptor=descriptor("m", []), version=9)))
    assert "version" in (v9.corrupt or "")
    footer = probe(
        write(tmp_path / "f", vmdk4(2048, descriptor=descriptor("m", []), gd=0xFFFFFFFFFFFFFFFF))
    )
    assert "footer" in (footer.corrupt or "")


def test_vmdk_stream_footer_wins(tmp_path: Path) -> None:
    desc = descriptor("streamOptimized", ['RW 4096 SPARSE "s.vmdk"'])
    head = bytearray(vmdk4(0, descriptor=desc, gd=0xFFFFFFFFFFFFFFFF))
    footer_hdr = vmdk4(4096, descriptor=None, gd=200)[:512]
    marker = struct.pack("<QII", 1, 0, 3) + bytes(496)
    eos = bytes(512)
    info = probe(write(tmp_path / "s.vmdk", bytes(head) + marker + footer_hdr + eos))
    assert (info.capacity, info.corrupt) == (2 * MiB, None)


def test_cowd(tmp_path: Path) -> None:
    h = struct.pack("<4sIIII", b"COWD", 1, 3, 4096, 512) + bytes(492)
    info = probe(write(tmp_path / "d.vmdk", h))
    assert (info.format, info.capacity) == ("vmdk", 2 * MiB)


# ---------------------------------------------------------------- vpc, vhdx


def test_vpc_chs_vs_current_size(tmp_path: Path) -> None:
    # 1000 MiB as qemu-img writes it: CHS 2031/16/63 -> 1048707072, current size larger
    chs = vpc_footer(1000 * MiB + 0x100000, 2031, 16, 63, creator=b"qemu")
    assert probe(write(tmp_path / "a.vhd", vpc_dynamic(chs))).capacity == 2031 * 16 * 63 * 512
    hyperv = vpc_footer(1000 * MiB, 2031, 16, 63, creator=b"win ")
    assert probe(write(tmp_path / "b.vhd", vpc_dynamic(hyperv))).capacity == 1000 * MiB
    maxchs = vpc_footer(3000 * 1024 * MiB, 65535, 16, 255, creator=b"vpc ")
    info = probe(write(tmp_path / "c.vhd", vpc_dynamic(maxchs)))
    assert info.capacity == 3000 * 1024 * MiB and "2040 GiB" in (info.corrupt or "")


def test_vpc_fixed_footer_at_end(tmp_path: Path) -> None:
    footer = vpc_footer(4 * MiB, 120, 16, 17 * 255 // 255, creator=b"qem2", disk_type=2)
    path = tmp_path / "f.vhd"
    path.write_bytes(b"")
    os.truncate(path, 4 * MiB)
    with path.open("ab") as f:
        f.write(footer)
    info = probe(str(path))
    assert (info.format, info.subformat, info.capacity) == ("vpc", "fixed", 4 * MiB)
    # a bad checksum at the end is just data: raw
    bad = bytearray(footer)
    bad[100] ^= 1
    with path.open("r+b") as f:
        f.seek(4 * MiB)
        f.write(bad)
    assert probe(str(path)).format == "raw"


def test_vpc_hostile(tmp_path: Path) -> None:
    footer = vpc_footer(4 * MiB, 0, 0, 0, creator=b"win ")
    assert "max table entries" in (
        probe(write(tmp_path / "a", vpc_dynamic(footer, entries=1 << 30))).corrupt or ""
    )
    assert "block size" in (
        probe(write(tmp_path / "b", vpc_dynamic(footer, block=3000))).corrupt or ""
    )
    assert "too small" in (
        probe(write(tmp_path / "c", vpc_dynamic(footer, entries=1))).corrupt or ""
    )
    truncated = probe(write(tmp_path / "d", footer))
    assert truncated.format == "vpc" and truncated.corrupt is not None


def test_vhdx(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "a.vhdx", vhdx(10 * 1024 * MiB)))
    assert (info.format, info.capacity, info.subformat) == ("vhdx", 10 << 30, "dynamic")
    assert info.cluster_size == 32 * MiB and info.corrupt is None
    assert probe(write(tmp_path / "f.vhdx", vhdx(MiB, fixed=True))).subformat == "fixed"
    diff = probe(write(tmp_path / "d.vhdx", vhdx(MiB, parent=True)))
    assert "differencing" in (diff.corrupt or "")
    assert "sector" in (probe(write(tmp_path / "s", vhdx(MiB, sector=1000))).corrupt or "")


def test_vhdx_bad_crc_and_log(tmp_path: Path) -> None:
    data = bytearray(vhdx(MiB))
    data[(64 << 10) + 200] ^= 1  # header 1 fails its CRC; header 2 still valid
    assert probe(write(tmp_path / "a", bytes(data))).corrupt is None
    data[(128 << 10) + 200] ^= 1
    assert "header" in (probe(write(tmp_path / "b", bytes(data))).corrupt or "")
    guid = uuid.uuid4().bytes
    logged = bytearray(vhdx(MiB, log_guid=guid))
    logged[MiB : MiB + 4] = b"loge"  # the log region starts at 1 MiB
    logged[MiB + 32 : MiB + 48] = guid
    assert "replay" in (probe(write(tmp_path / "c", bytes(logged))).corrupt or "")
    # a log GUID with no matching entry: nothing to replay
    assert probe(write(tmp_path / "d", vhdx(MiB, log_guid=guid))).corrupt is None


# ---------------------------------------------------------------- vdi, parallels, luks


def test_vdi(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "a.vdi", vdi(10 * MiB)))
    assert (info.format, info.capacity, info.subformat) == ("vdi", 10 * MiB, "dynamic")
    assert probe(write(tmp_path / "b", vdi(1000000))).capacity == 1000448  # rounded up
    assert probe(write(tmp_path / "s", vdi(MiB, image_type=2))).subformat == "static"
    diff = probe(write(tmp_path / "d", vdi(MiB, image_type=4, parent=b"\1" * 16)))
    assert "parent" in (diff.corrupt or "")


def test_parallels(tmp_path: Path) -> None:
    assert probe(write(tmp_path / "a.hds", parallels(4096))).capacity == 2 * MiB
    old = probe(write(tmp_path / "b.hds", parallels((1 << 32) | 4096, old=True)))
    assert (old.capacity, old.subformat) == (2 * MiB, "old")
    assert probe(write(tmp_path / "c", parallels(8, tracks=0))).corrupt is not None


def test_luks(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "l", luks(4096), size=6 * MiB))
    assert (info.format, info.capacity, info.encryption) == ("luks", 4 * MiB, "luks")
    past = probe(write(tmp_path / "p", luks(1 << 20), size=MiB))
    assert past.corrupt is not None


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"payload_sectors": 8}, "overlaps the payload"),
        ({"payload_sectors": 4}, "overlaps the LUKS header"),
        ({"key_bytes": 20}, "key size"),
        ({"cipher": b"rot13"}, "not supported"),
        ({"mode": b"xts-foo"}, "IV generator"),
        ({"mode": b"cbc-essiv:sha224", "key_bytes": 32}, "ESSIV"),
        ({"mode": b"gcm-plain64"}, "cipher mode"),
        ({"hash_": b"crc32"}, "hash"),
    ],
)
def test_luks_header_checks(tmp_path: Path, kwargs: dict, reason: str) -> None:
    info = probe(write(tmp_path / "l", luks(**kwargs), size=4 * MiB))
    assert info.format == "luks" and reason in (info.corrupt or "")


def test_luks_slot_checks(tmp_path: Path) -> None:
    good = luks(mode=b"cbc-essiv:sha256", key_bytes=32)
    assert probe(write(tmp_path / "ok", good, size=4 * MiB)).corrupt is None
    for offset, value, reason in [
        (208 + 48 + 44, 3999, "stripes"),
        (208 + 48, 7, "state"),
        (208 + 4, 0, "iteration"),
        (208 + 48 + 40, 8, "overlap"),
        (164, 0, "digest iteration"),
    ]:
        data = bytearray(luks())
        struct.pack_into(">I", data, offset, value)
        info = probe(write(tmp_path / "bad", bytes(data), size=4 * MiB))
        assert reason in (info.corrupt or ""), (offset, info.corrupt)
    v2 = probe(write(tmp_path / "v2", luks(0, version=2), size=MiB))
    assert v2.format == "luks" and "LUKS version 2" in (v2.corrupt or "")


# ---------------------------------------------------------------- iso, dmg, bochs, cloop, raw


def test_iso_is_raw_for_qemu(tmp_path: Path) -> None:
    data = bytearray(0x9000)
    data[0x8000:0x8006] = b"\x01CD001"
    info = probe(write(tmp_path / "a.iso", bytes(data)))
    assert (info.format, info.capacity) == ("iso", 0x9000)
    assert qemu_format("iso") == "raw"


def test_dmg(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "x", bytes(4096) + koly(3514)))
    assert (info.format, info.capacity) == ("dmg", 3514 * 512)


def test_bochs(tmp_path: Path) -> None:
    assert probe(write(tmp_path / "a", bochs(1032192))).capacity == 1032192
    assert probe(write(tmp_path / "b", bochs(MiB, v1=True))).capacity == MiB
    bad = bytearray(bochs(MiB))
    struct.pack_into("<I", bad, 72, 1)  # catalog too small
    assert probe(write(tmp_path / "c", bytes(bad))).corrupt is not None


def test_cloop(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "c", cloop(65536, 16)))
    assert (info.format, info.capacity) == ("cloop", MiB)
    assert probe(write(tmp_path / "d", cloop(1000, 1))).corrupt is not None


def test_raw_rounds_up_like_qemu(tmp_path: Path) -> None:
    assert probe(write(tmp_path / "r", b"x" * 1000)) == ImageInfo("raw", 1024)
    assert probe(write(tmp_path / "e", b"")) == ImageInfo("raw", 0)


# ---------------------------------------------------------------- forced formats, odd files


def test_forced_format_is_never_guessed(tmp_path: Path) -> None:
    path = write(tmp_path / "guest.img", qcow2(MiB, backing=b"/etc/shadow", backing_fmt=b"raw"))
    forced = probe(path, format="raw")
    assert forced.backing is None and forced.format == "raw"
    wrong = probe(path, format="vmdk")
    assert wrong.format == "vmdk" and wrong.corrupt is not None
    assert probe(path, format="nonsense").corrupt is not None


def test_probe_fd_with_block_device_size(tmp_path: Path) -> None:
    path = write(tmp_path / "q", qcow2(5 * MiB))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert probe_fd(fd, path, os.fstat(fd).st_size).capacity == 5 * MiB
    finally:
        os.close(fd)


def test_fifo_and_directory_are_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert probe(str(fifo)).corrupt == "not a regular file or block device"
    assert probe(str(tmp_path)).corrupt == "not a regular file or block device"
    with pytest.raises(FileNotFoundError):
        probe(str(tmp_path / "absent"))


@pytest.mark.parametrize(
    "data",
    [
        qcow2(MiB),
        qcow1(MiB),
        qed(MiB),
        vmdk4(2048, descriptor=b"x"),
        vdi(MiB),
        parallels(8),
        vhdx(MiB),
        bochs(MiB),
        cloop(512, 1),
        cow(MiB),
        luks(8),
    ],
    ids=[
        "qcow2",
        "qcow",
        "qed",
        "vmdk",
        "vdi",
        "parallels",
        "vhdx",
        "bochs",
        "cloop",
        "cow",
        "luks",
    ],
)
def test_every_truncation_is_reported_not_raised(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "t"
    for cut in sorted({0, 3, 4, 7, 8, 16, 30, 48, 64, 100, 104, 300, 511, 1040, 65536, 200000}):
        if cut >= len(data):
            continue
        path.write_bytes(data[:cut])
        info = probe(str(path))
        assert isinstance(info, ImageInfo)
        assert info.capacity >= 0


# ---------------------------------------------------------------- cost: reads per probe


def test_crc32c_known_answer() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(b"\0" * 32) == 0x8A9136AA  # RFC 3720 B.4 test vector


class _Counter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[tuple[int, int]] = []
        real = os.pread

        def pread(fd: int, n: int, off: int) -> bytes:
            self.reads.append((off, n))
            return real(fd, n, off)

        monkeypatch.setattr(os, "pread", pread)


@pytest.mark.parametrize(
    ("data", "max_reads"),
    [
        (qcow2(MiB, backing=b"b.raw", backing_fmt=b"raw"), 1),
        (qcow1(MiB, b"b"), 1),
        (qed(MiB, backing=b"b"), 1),
        (vmdk4(2048, descriptor=descriptor("monolithicSparse", [])), 1),
        (vpc_dynamic(vpc_footer(MiB, 20, 16, 63)), 1),
        (vdi(MiB), 1),
        (parallels(8), 1),
        (luks(8), 1),
        (b"", 1),
        (b"\1" * 100, 2),  # raw: head and tail
        (vhdx(MiB), 4),  # head, headers + region table, metadata table, metadata items
    ],
    ids=["qcow2", "qcow", "qed", "vmdk", "vpc", "vdi", "parallels", "luks", "empty", "raw", "vhdx"],
)
def test_reads_per_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, max_reads: int
) -> None:
    path = write(tmp_path / "img", data, size=max(len(data), 8 * MiB) if data else None)
    counter = _Counter(monkeypatch)
    probe(path)
    assert len(counter.reads) <= max_reads, counter.reads
    assert sum(n for _, n in counter.reads) <= 320 << 10


def test_big_sparse_raw_is_not_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "big.raw", b"", size=64 << 30)  # sparse, 64 GiB
    counter = _Counter(monkeypatch)
    assert probe(path) == ImageInfo("raw", 64 << 30)
    assert sum(n for _, n in counter.reads) <= (64 << 10) + 512


def test_vmdk_vmfs_descriptor(tmp_path: Path) -> None:
    (tmp_path / "esx-flat.vmdk").write_bytes(b"")
    desc = descriptor("vmfs", ['RW 41943040 VMFS "esx-flat.vmdk"'])
    info = probe(write(tmp_path / "esx.vmdk", desc))
    assert (info.subformat, info.capacity, info.corrupt) == ("vmfs", 20 << 30, None)
    assert info.extra_files == (str(tmp_path / "esx-flat.vmdk"),)
    bad = probe(write(tmp_path / "b.vmdk", descriptor("vmfs", ['RW 8 VMFS "esx-flat.vmdk" 5'])))
    assert "invalid extent line" in (bad.corrupt or "")
    nocid = probe(write(tmp_path / "n.vmdk", b'version=1\ncreateType="vmfs"\n'))
    assert "CID" in (nocid.corrupt or "")


def _resign_region(data: bytearray) -> None:
    region = 192 << 10
    struct.pack_into("<I", data, region + 4, 0)
    struct.pack_into("<I", data, region + 4, crc32c(bytes(data[region : region + (64 << 10)])))


def test_vhdx_structure_checks(tmp_path: Path) -> None:
    data = bytearray(vhdx(MiB))
    data[(192 << 10) + 1000] = 1  # region table CRC no longer matches
    assert "region table" in (probe(write(tmp_path / "a", bytes(data))).corrupt or "")

    data = bytearray(vhdx(MiB))
    struct.pack_into("<I", data, (192 << 10) + 8, 3)  # a third, unknown but required region
    data[(192 << 10) + 80 : (192 << 10) + 96] = uuid.uuid4().bytes
    struct.pack_into("<QII", data, (192 << 10) + 96, 8 * MiB, MiB, 1)
    _resign_region(data)
    assert "unknown required" in (probe(write(tmp_path / "b", bytes(data))).corrupt or "")

    data = bytearray(vhdx(MiB))
    struct.pack_into("<Q", data, (192 << 10) + 64, 512 << 10)  # metadata inside the header area
    _resign_region(data)
    assert "overlapping" in (probe(write(tmp_path / "c", bytes(data))).corrupt or "")

    data = bytearray(vhdx(MiB))
    struct.pack_into("<H", data, 2 * MiB + 10, 4)  # drop the page-83 item
    assert "missing" in (probe(write(tmp_path / "d", bytes(data))).corrupt or "")

    small_bat = probe(write(tmp_path / "e", vhdx(1 << 50, bat_len=4096)))
    assert small_bat.capacity == 1 << 50 and "allocation table" in (small_bat.corrupt or "")


def test_qcow1_l1_offset_overflow(tmp_path: Path) -> None:
    data = bytearray(qcow1(MiB))
    struct.pack_into(">Q", data, 40, 0xB3 << 56)
    assert "L1" in (probe(write(tmp_path / "q", bytes(data))).corrupt or "")


def test_parallels_format_extension(tmp_path: Path) -> None:
    data = bytearray(parallels(8) + bytes(512))
    struct.pack_into("<Q", data, 56, 1)  # extension at sector 1: no magic there
    assert "extension" in (probe(write(tmp_path / "p", bytes(data))).corrupt or "")
    struct.pack_into("<Q", data, 512, 0xAB234CEF23DCEA87)
    assert probe(write(tmp_path / "p", bytes(data))).corrupt is None


def test_sizes_beyond_int64_are_corrupt(tmp_path: Path) -> None:
    info = probe(write(tmp_path / "p", parallels((1 << 60) + 1)))
    assert info.capacity > (1 << 63) and info.corrupt == "virtual size out of range"


def test_vpc_bat_past_end(tmp_path: Path) -> None:
    footer = vpc_footer(4 * MiB, 0, 0, 0, creator=b"win ")
    data = bytearray(vpc_dynamic(footer))
    struct.pack_into(">Q", data, 512 + 16, 1 << 30)  # BAT offset far past the end
    assert "truncated" in (probe(write(tmp_path / "v", bytes(data))).corrupt or "")


def test_vmdk_extent_lines_read_like_qemu(tmp_path: Path) -> None:
    """qemu's sscanf() skips newlines: a blank line before an extent counts it twice."""
    (tmp_path / "m-flat.vmdk").write_bytes(b"")
    lines = ["", 'RW 16384 FLAT "m-flat.vmdk" 0']
    twice = probe(write(tmp_path / "m.vmdk", descriptor("monolithicFlat", lines)))
    assert twice.capacity == 2 * 16384 * 512 and twice.corrupt is None
    assert twice.extra_files == (str(tmp_path / "m-flat.vmdk"),)
    # a FLAT line whose closing quote is gone has no offset for qemu: invalid
    broken = descriptor("monolithicFlat", ['RW 16384 FLAT "m-flat.vmdk\u00ff 0'])
    assert "invalid extent line" in (probe(write(tmp_path / "b.vmdk", broken)).corrupt or "")
    # a descriptor whose extents are all unusable: qemu would abort, we say corrupt
    none = descriptor("twoGbMaxExtentSparse", ['RW 0 SPARSE "x.vmdk"'])
    assert "no usable extents" in (probe(write(tmp_path / "n.vmdk", none)).corrupt or "")
