"""Headers of qemu's own formats and their relatives: qcow2, qcow (v1), qed, UML cow.

Facts used (offsets in bytes; see docs/image-formats.md §1.1-1.4):

* qcow2/qcow: big-endian, magic ``QFI\\xfb``; version 1 is qcow, 2 and 3 are qcow2.
  qcow2 header extensions follow the header (72 bytes in v2, ``header_length`` in v3)
  up to the backing name or the end of cluster 0.
* qed: little-endian, magic ``QED\\0``; its only backing-format fact is "backing is raw".
* cow: big-endian, magic ``OOOM``, version 2; records no backing format.

Sanity limits mirror the checks qemu makes when it opens the image, so that an image
qemu refuses is reported ``corrupt`` here too.
"""

from __future__ import annotations

from kvmpool.formats import luks
from kvmpool.formats._buf import Source, Truncated, be32, be64, cstr, le32, le64
from kvmpool.formats._paths import backing_ref
from kvmpool.formats.info import BackingRef, ImageInfo

QCOW_MAGIC = b"QFI\xfb"
QED_MAGIC = b"QED\0"
COW_MAGIC = b"OOOM"

_EXT_END = 0
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_FDE = 0x0537BE77
_EXT_DATA_FILE = 0x44415441

_INCOMPAT_DIRTY = 1 << 0
_INCOMPAT_CORRUPT = 1 << 1
_INCOMPAT_DATA_FILE = 1 << 2
_INCOMPAT_COMPRESSION = 1 << 3
_INCOMPAT_EXTL2 = 1 << 4
_INCOMPAT_KNOWN = 0x1F

_INT64_MAX = (1 << 63) - 1
_MAX_EXTENSIONS = 1024  # real images carry a handful; bounds work on hostile ones
_MAX_L1_ENTRIES = (32 << 20) // 8  # qemu: the active L1 table is at most 32 MiB


def floor512(n: int) -> int:
    return n - n % 512


def _backing_name(src: Source, off: int, length: int) -> str:
    return cstr(src.read(off, length))


def parse_qcow2(src: Source) -> ImageInfo:
    h = src.head
    version = be32(h, 4)
    size = be64(h, 24)
    capacity = floor512(size)
    if version not in (2, 3):
        return ImageInfo("qcow2", capacity, corrupt=f"unsupported qcow2 version {version}")
    compat = "0.10" if version == 2 else "1.1"
    cluster_bits = be32(h, 20)
    if not 9 <= cluster_bits <= 21:
        return ImageInfo(
            "qcow2", capacity, compat=compat, corrupt=f"unsupported cluster size 2^{cluster_bits}"
        )
    cluster = 1 << cluster_bits
    crypt = be32(h, 32)
    l1_size = be32(h, 36)
    incompat = compatible = 0
    header_length = 72
    refcount_order = 4
    compression = "zlib"
    problems: list[str] = []
    if version == 3:
        incompat = be64(h, 72)
        compatible = be64(h, 80)
        refcount_order = be32(h, 96)
        header_length = be32(h, 100)
        if header_length < 104:
            problems.append(f"header length {header_length} is too short")
        elif header_length > cluster:
            problems.append("header exceeds cluster 0")
        elif header_length > 104:
            ctype = src.read(104, 1)[0]
            if ctype == 1:
                compression = "zstd"
            elif ctype != 0:
                problems.append(f"unknown compression type {ctype}")
            if ctype != 0 and not incompat & _INCOMPAT_COMPRESSION:
                problems.append("compression type set without its incompatible bit")
        if refcount_order > 6:
            problems.append(f"refcount order {refcount_order} is too large")
    unknown = incompat & ~_INCOMPAT_KNOWN
    if unknown:
        problems.append(f"unsupported incompatible features 0x{unknown:x}")
    if incompat & _INCOMPAT_CORRUPT:
        problems.append("image is marked corrupt")
    extended_l2 = bool(incompat & _INCOMPAT_EXTL2)
    if extended_l2 and cluster_bits < 14:
        problems.append("extended L2 entries need clusters of at least 16 KiB")

    l2_entries = cluster // (16 if extended_l2 else 8)
    needed_l1 = -(-size // (cluster * l2_entries))
    if l1_size > _MAX_L1_ENTRIES or needed_l1 > _MAX_L1_ENTRIES:
        problems.append("active L1 table too large (virtual size out of range)")
    elif l1_size < needed_l1:
        problems.append("L1 table is too small for the virtual size")

    # Table placement, as qemu checks it on open (alignment and 63-bit bounds only).
    tables = (
        ("L1", be64(h, 40), l1_size * 8),
        ("refcount", be64(h, 48), be32(h, 56) * cluster),
        ("snapshot", be64(h, 64), be32(h, 60) * 40),
    )
    for name, offset, length in tables:
        if offset % cluster or offset + length > _INT64_MAX:
            problems.append(f"{name} table offset is invalid")
    if be32(h, 56) > (8 << 20) >> cluster_bits:
        problems.append("refcount table too large")
    if be32(h, 60) > 65536:
        problems.append("too many snapshots")

    encryption: str | None = None
    if crypt == 1:
        encryption = "qcow"
    elif crypt == 2:
        encryption = "luks"
    elif crypt != 0:
        problems.append(f"unknown encryption method {crypt}")

    # Backing name (must lie inside cluster 0, at most 1023 bytes).
    backing_off = be64(h, 8)
    backing_len = be32(h, 16)
    backing_raw: str | None = None
    if backing_off:
        if backing_off > cluster:
            problems.append("backing file name offset lies outside cluster 0")
        elif backing_len > min(1023, cluster - backing_off):
            problems.append("backing file name too long")
        elif backing_len:
            backing_raw = _backing_name(src, backing_off, backing_len)

    # Header extensions.
    backing_fmt: str | None = None
    data_file: str | None = None
    fde = False
    fde_off = 0
    if header_length <= cluster:
        # qemu's walk: from the header end to the backing name (or the end of cluster 0);
        # bytes past the end of the file read as zeros.
        end = backing_off if backing_off and backing_off <= cluster else cluster
        ext_area = src.head[:end]

        def need(upto: int) -> bytes:
            if upto <= len(ext_area) or len(ext_area) == min(end, src.size):
                return ext_area
            return src.read(0, min(end, src.size), limit=cluster)  # rare: past the first read

        off = header_length
        seen = 0
        while off < end:
            seen += 1
            if seen > _MAX_EXTENSIONS:
                problems.append("too many header extensions")
                break
            ext_area = need(off + 8)
            header = ext_area[off : off + 8].ljust(8, b"\0")
            etype, elen = be32(header, 0), be32(header, 4)
            off += 8
            if off > end or elen > end - off:
                problems.append(f"header extension 0x{etype:08x} too large")
                break
            if etype == _EXT_END:
                break
            ext_area = need(off + elen)
            data = ext_area[off : off + elen].ljust(elen, b"\0")
            if etype == _EXT_BACKING_FORMAT:
                if elen >= 16:
                    problems.append("backing format name too long")
                else:
                    backing_fmt = cstr(data)
            elif etype == _EXT_FDE:
                fde = elen >= 16
                if fde:
                    fde_off = be64(data, 0)
            elif etype == _EXT_DATA_FILE:
                data_file = cstr(data)
            off += (elen + 7) & ~7
    if crypt == 2 and not fde:
        problems.append("LUKS encryption without its header extension")
    elif crypt == 2:
        # qemu reads the LUKS header even to report sizes; one small read (encrypted only).
        try:
            luks_header = src.read(fde_off, luks.HEADER_LEN)
        except Truncated:
            luks_header = b""
        problems.extend(luks.header_problems(luks_header))

    extra: tuple[str, ...] = ()
    if incompat & _INCOMPAT_DATA_FILE:
        if not data_file:
            problems.append("external data file required but not named")
            data_file = None
        else:
            ref = backing_ref(data_file, src.path, None)
            extra = (ref.path,) if ref.path else ()
    else:
        data_file = None

    backing: BackingRef | None = None
    if backing_raw:
        backing = backing_ref(backing_raw, src.path, backing_fmt)
    return ImageInfo(
        format="qcow2",
        capacity=capacity,
        backing=backing,
        encryption=encryption,
        compat=compat,
        cluster_size=cluster,
        lazy_refcounts=bool(compatible & 1),
        extended_l2=extended_l2,
        compression_type=compression,
        data_file=data_file,
        extra_files=extra,
        corrupt="; ".join(problems) or None,
    )


def parse_qcow(src: Source) -> ImageInfo:
    h = src.head
    size = be64(h, 24)
    capacity = floor512(size)
    cluster_bits = h[32] if len(h) > 33 else 0
    l2_bits = h[33] if len(h) > 33 else 0
    crypt = be32(h, 36)
    problems: list[str] = []
    if size <= 1:
        problems.append("virtual size too small")
    if not 9 <= cluster_bits <= 16:
        problems.append(f"unsupported cluster size 2^{cluster_bits}")
    elif not 6 <= l2_bits <= 13:
        problems.append(f"unsupported L2 table size 2^{l2_bits}")
    elif size > (1 << 64) - 1 - (1 << (cluster_bits + l2_bits)) or (
        -(-size >> (cluster_bits + l2_bits)) > (2**31 - 1) // 8
    ):
        problems.append("virtual size too large")
    if crypt > 1:
        problems.append(f"unknown encryption method {crypt}")
    if 9 <= cluster_bits <= 16 and 6 <= l2_bits <= 13:
        l1_bytes = -(-size >> (cluster_bits + l2_bits)) * 8
        if be64(h, 40) + l1_bytes > _INT64_MAX:
            problems.append("L1 table offset is invalid")
    backing: BackingRef | None = None
    backing_off = be64(h, 8)
    backing_len = be32(h, 16)
    if backing_off:
        if backing_len > 1023:
            problems.append("backing file name too long")
        elif backing_len:
            name = _backing_name(src, backing_off, backing_len)
            backing = backing_ref(name, src.path, None) if name else None
    return ImageInfo(
        format="qcow",
        capacity=capacity,
        backing=backing,
        encryption="qcow" if crypt == 1 else None,
        cluster_size=1 << cluster_bits if 9 <= cluster_bits <= 16 else None,
        corrupt="; ".join(problems) or None,
    )


_QED_F_BACKING = 1 << 0
_QED_F_NEED_CHECK = 1 << 1
_QED_F_BACKING_RAW = 1 << 2


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _qed_table_ok(offset: int, cluster: int, table_size: int, header_size: int, size: int) -> bool:
    """qemu's rule: first and last cluster of the table aligned, after the header, in the file.

    (A one-cluster table fails qemu's overflow test too, so it is refused as qemu does.)
    """
    end = offset + (table_size - 1) * cluster
    if end <= offset:
        return False
    file_end = size - size % cluster
    header = header_size * cluster
    return all(off % cluster == 0 and header <= off < file_end for off in (offset, end))


def parse_qed(src: Source) -> ImageInfo:
    h = src.head
    cluster = le32(h, 4)
    table_size = le32(h, 8)
    header_size = le32(h, 12)
    features = le64(h, 16)
    size = le64(h, 48)
    problems: list[str] = []
    if not (_pow2(cluster) and 4096 <= cluster <= 64 << 20):
        problems.append(f"invalid cluster size {cluster}")
    elif not (_pow2(table_size) and table_size <= 16):
        problems.append(f"invalid table size {table_size}")
    else:
        entries = table_size * cluster // 8
        if size > entries * entries * cluster or size % 512:
            problems.append("invalid virtual size")
    if features & ~0x7:
        problems.append(f"unsupported features 0x{features & ~0x7:x}")
    if not problems and not _qed_table_ok(le64(h, 40), cluster, table_size, header_size, src.size):
        problems.append("L1 table offset is invalid")
    backing: BackingRef | None = None
    if features & _QED_F_BACKING:
        off = le32(h, 56)
        length = le32(h, 60)
        if off + length > header_size * cluster or length >= 4096:
            problems.append("backing file name lies outside the header")
        elif length:
            fmt = "raw" if features & _QED_F_BACKING_RAW else None
            name = _backing_name(src, off, length)
            backing = backing_ref(name, src.path, fmt) if name else None
    return ImageInfo(
        format="qed",
        capacity=size,
        backing=backing,
        cluster_size=cluster if _pow2(cluster) else None,
        corrupt="; ".join(problems) or None,
    )


def parse_cow(src: Source) -> ImageInfo:
    h = src.head
    if len(h) < 1048:
        raise Truncated("cow header is 1048 bytes")
    size = be64(h, 1036)
    name = cstr(h[8:1032])
    backing = backing_ref(name, src.path, None) if name else None
    return ImageInfo(format="cow", capacity=size, backing=backing)
