"""What LVM keeps on disk and in device-mapper, read without running an lvm command.

Every lvm command costs a process start and a device scan (0.2-0.5 s on a slow host), so
the logical backend answers its most frequent questions here first and asks ``lvs``/``pvs``
only when these readers cannot answer for sure:

- ``read_label`` / ``vg_metadata``: the PV label in a device's first sectors and the VG
  metadata text its metadata area points to (LVM2 text format), checked against the
  checksums LVM stores with them. From that text: the VG's name, its LV names, and its size
  and free space (extents of its PVs, less those its LVs take), as vgs reports them.
- ``active_linear_lv``: an active LV's device-mapper device (``/dev/VG/LV``, sysfs, and the
  table through the kernel's DM_TABLE_STATUS ioctl): its UUID, size and where its extents lie.

Each returns None whenever anything is unexpected (not root, no label, a checksum that does
not match, an LV that is not plain linear, ...); the caller then runs lvm. Read-only.
Formats: LVM2's on-disk layout (label sector "LABELONE", pv_header, mda_header with its
raw_locn slots, circular metadata buffer) and linux/dm-ioctl.h.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import mmap
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass

SECTOR = 512
_ALIGN = 4096  # reads are O_DIRECT (LVM writes its metadata so): aligned to any block size
_LABEL_ID = b"LABELONE"
_LABEL_TYPE = b"LVM2 001"
_MDA_MAGIC = b"\x20LVM2\x20x[5A%r0N*>"
_MDA_HEADER_SIZE = 512
_INITIAL_CRC = 0xF597A6CF
_RAW_LOCN_IGNORED = 0x1
_MAX_METADATA = 8 << 20


@dataclass(frozen=True, slots=True)
class PvLabel:
    pv_uuid: str  # as pvs shows it, with dashes
    pe_start: int  # bytes: where the first extent starts
    mdas: tuple[tuple[int, int], ...]  # metadata areas: (offset, size) in bytes


@dataclass(frozen=True, slots=True)
class VgMetadata:
    name: str
    seqno: int
    lvs: frozenset[str]  # every LV in the metadata, hidden ones (pool_tdata, snapshot0) too
    size: int | None = None  # bytes, as vgs's vg_size; None: not known for sure
    free: int | None = None  # bytes, as vgs's vg_free


@dataclass(frozen=True, slots=True)
class ActiveLv:
    uuid: str  # as lvs shows it
    size: int  # bytes
    extents: tuple[tuple[str, int, int], ...]  # (PV path, start byte in its data area, bytes)


def lvm_crc(data: bytes, initial: int = _INITIAL_CRC) -> int:
    """LVM's checksum: CRC-32 (zlib's polynomial) started from ``initial``, without zlib's
    inversions before and after."""
    return ~zlib.crc32(data, ~initial & 0xFFFFFFFF) & 0xFFFFFFFF


def format_uuid(raw: str) -> str:
    """A 32-character LVM id as lvm prints it: 6-4-4-4-4-4-6 characters joined by '-'."""
    if len(raw) != 32:
        raise ValueError(f"not an LVM id: {raw!r}")
    cuts = (0, 6, 10, 14, 18, 22, 26, 32)
    return "-".join(raw[a:b] for a, b in itertools.pairwise(cuts))


def dm_name(vg: str, lv: str) -> str:
    """The device-mapper name LVM gives an LV: each '-' doubled, VG and LV joined by '-'."""
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


# ------------------------------------------------------------------ reading devices


def _read(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` with O_DIRECT-safe (aligned) reads."""
    start = offset // _ALIGN * _ALIGN
    end = -(-(offset + length) // _ALIGN) * _ALIGN
    buf = mmap.mmap(-1, end - start)
    try:
        got = os.preadv(fd, [buf], start)
        return bytes(buf[offset - start:min(offset - start + length, got)])
    finally:
        buf.close()


def _open(path: str) -> int | None:
    for flags in (os.O_DIRECT, 0):  # an image file on tmpfs takes no O_DIRECT
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
        except OSError as err:
            if err.errno != errno.EINVAL:
                return None
    return None


def parse_label(head: bytes) -> PvLabel | None:
    """The PV label in the first four sectors ``head`` of a device, if there is one and its
    checksum holds."""
    for sector in range(4):
        at = sector * SECTOR
        block = head[at:at + SECTOR]
        if len(block) < SECTOR or block[:8] != _LABEL_ID or block[24:32] != _LABEL_TYPE:
            continue
        number, crc, offset = struct.unpack_from("<QII", block, 8)
        if number != sector or lvm_crc(block[20:]) != crc or not 32 <= offset < SECTOR - 48:
            return None
        raw_uuid = block[offset:offset + 32].decode("ascii", "replace")
        pos = offset + 40  # past the uuid and the device size
        areas: list[list[tuple[int, int]]] = [[], []]  # data areas, then metadata areas
        for kind in (0, 1):
            while True:
                if pos + 16 > SECTOR:
                    return None
                loc = struct.unpack_from("<QQ", block, pos)
                pos += 16
                if loc == (0, 0):
                    break
                areas[kind].append(loc)
        if not areas[0]:
            return None
        try:
            uuid = format_uuid(raw_uuid)
        except ValueError:
            return None
        return PvLabel(pv_uuid=uuid, pe_start=areas[0][0][0], mdas=tuple(areas[1]))
    return None


def read_label(device: str) -> PvLabel | None:
    fd = _open(device)
    if fd is None:
        return None
    try:
        return parse_label(_read(fd, 0, 4 * SECTOR))
    except OSError:
        return None
    finally:
        os.close(fd)


class _Device:
    """Reads of one device, its first ``_HEAD`` bytes read once: the label, the usual
    metadata area header (at 4 KiB) and often the metadata itself come with that read."""

    _HEAD = 16384

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.head = _read(fd, 0, self._HEAD)

    def read(self, offset: int, length: int) -> bytes:
        if offset + length <= len(self.head):
            return self.head[offset:offset + length]
        return _read(self.fd, offset, length)


def _metadata_text(dev: _Device, mda_offset: int, mda_size: int) -> str | None:
    header = dev.read(mda_offset, _MDA_HEADER_SIZE)
    if len(header) < _MDA_HEADER_SIZE or header[4:20] != _MDA_MAGIC:
        return None
    checksum, = struct.unpack_from("<I", header, 0)
    version, start, size = struct.unpack_from("<IQQ", header, 20)
    if lvm_crc(header[4:]) != checksum or version != 1 or start != mda_offset \
            or size != mda_size:
        return None
    offset, length, text_crc, flags = struct.unpack_from("<QQII", header, 40)
    if length == 0 or flags & _RAW_LOCN_IGNORED or length > min(size, _MAX_METADATA) \
            or not _MDA_HEADER_SIZE <= offset < size:
        return None
    first = min(length, size - offset)  # the buffer is circular: it may wrap to its start
    text = dev.read(start + offset, first)
    if first < length:
        text += dev.read(start + _MDA_HEADER_SIZE, length - first)
    if len(text) != length or lvm_crc(text) != text_crc:
        return None
    return text.rstrip(b"\0").decode("utf-8", "replace")


def vg_metadata(device: str) -> VgMetadata | None:
    """The VG metadata the PV ``device`` holds (its first usable metadata area)."""
    fd = _open(device)
    if fd is None:
        return None
    try:
        dev = _Device(fd)
        label = parse_label(dev.head[:4 * SECTOR])
        for mda_offset, mda_size in label.mdas if label is not None else ():
            text = _metadata_text(dev, mda_offset, mda_size)
            if text is not None:
                return parse_metadata(text)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


# LVM2 text metadata, as LVM writes it into the metadata area (sections "name {" and "}"
# each on a line of their own, one "key = value" per line, arrays may span lines; no
# indentation on disk, tabs in /etc/lvm/backup):
#   vg0 {
#   id = "FPivUC-rj77-eJt8-mgKl-SCPM-3Yet-3PCAQE"
#   seqno = 3
#   ...
#   physical_volumes {
#   pv0 { id = "..." device = "/dev/vdb" ... pe_start = 2048 pe_count = 4095 }
#   }
#   logical_volumes {
#   x {
#   id = "tZhasu-cSiv-35k5-Gf6N-lamd-rGYP-wEys1B"
#   ...
#   segment1 { start_extent = 0 extent_count = 2 type = "striped" stripes = [ "pv0", 0 ] }
#   }
#   }
#   }
#   contents = "Text Format Volume Group"
# (indented with tabs by depth; shown flat here)
def parse_metadata(text: str) -> VgMetadata | None:
    """The VG name, seqno, LV names and extent counts of a metadata text; None if it is
    not well formed."""
    sections = _sections(text)
    if sections is None:
        return None
    tops = [path for path in sections if len(path) == 1]
    if len(tops) != 1:
        return None
    vg, = tops[0]
    seqno = sections[(vg,)].get("seqno", "")
    if not seqno.isdigit():
        return None
    lvs = frozenset(path[2] for path in sections
                    if len(path) == 3 and path[1] == "logical_volumes")
    space = _space(sections, vg, lvs)
    return VgMetadata(name=vg, seqno=int(seqno), lvs=lvs,
                      size=space[0] if space else None, free=space[1] if space else None)


def _sections(text: str) -> dict[tuple[str, ...], dict[str, str]] | None:
    """Every section by its path (("vg0",), ("vg0", "logical_volumes", "x"), ...) with its
    ``key = value`` lines, values as written (an array joined onto one line)."""
    path: list[str] = []
    sections: dict[tuple[str, ...], dict[str, str]] = {}
    pending: tuple[str, str] | None = None  # an array still open: (key, text so far)
    for raw in text.splitlines():
        line = raw.strip()
        if pending is not None:
            key, value = pending
            value += " " + line
            if "]" in line:
                if path:
                    sections[tuple(path)][key] = value
                pending = None
            else:
                pending = key, value
            continue
        if not line or line.startswith("#"):
            continue
        if line.endswith("{") and "=" not in line and '"' not in line:
            path.append(line[:-1].strip())
            if tuple(path) in sections:
                return None  # the same section twice
            sections[tuple(path)] = {}
        elif line == "}":
            if not path:
                return None
            path.pop()
        elif " = " in line:
            key, value = line.split(" = ", 1)
            if value.startswith("[") and "]" not in value:
                pending = key, value
            elif path:
                sections[tuple(path)][key] = value
    if path or pending is not None:
        return None
    return sections


# The segment types counted here: their area lists (LVM writes "stripes", "mirrors",
# "raids" or "raid0_lvs") name PVs (striped) or other LVs, or they have none (thin, zero,
# error). Any other type, or an area list naming anything else, leaves the VG's free space
# to vgs.
_KNOWN_SEGMENT_TYPES = re.compile(r'"(striped|thin|thin-pool|snapshot|mirror|raid[0-9a-z_]*'
                                  r'|cache|cache-pool|zero|error)"')
_AREA_LISTS = ("stripes", "mirrors", "raids", "raid0_lvs")


def _space(sections: dict[tuple[str, ...], dict[str, str]], vg: str,
           lvs: frozenset[str]) -> tuple[int, int] | None:
    """(size, free) in bytes as vgs reports them, or None when unsure: the extents of every
    PV, less those the LVs' striped segments take on PVs directly."""
    extent = sections[(vg,)].get("extent_size", "")
    pvs = {path[2]: fields for path, fields in sections.items()
           if len(path) == 3 and path[1] == "physical_volumes"}
    if not extent.isdigit() or not pvs:
        return None
    total = 0
    for fields in pvs.values():
        count = fields.get("pe_count", "")
        if not count.isdigit() or "MISSING" in fields.get("flags", "[]") \
                or '"ALLOCATABLE"' not in fields.get("status", ""):
            return None
        total += int(count)
    used = 0
    for path, fields in sections.items():
        if len(path) != 4 or path[1] != "logical_volumes" or not path[3].startswith("segment"):
            continue
        if not _KNOWN_SEGMENT_TYPES.fullmatch(fields.get("type", "")):
            return None
        for key in _AREA_LISTS:
            names = re.findall(r'"([^"]*)"', fields.get(key, ""))
            if key == "stripes" and names and all(n in pvs for n in names):
                count = fields.get("extent_count", "")
                if not count.isdigit():
                    return None
                used += int(count)
            elif not all(n in lvs for n in names):
                return None  # a pvmove's mirror on PVs, a PV that is not listed, ...
    if used > total:
        return None
    size = int(extent) * SECTOR
    return total * size, (total - used) * size


# ------------------------------------------------------------------ device-mapper

_DM_CONTROL = "/dev/mapper/control"
_DM_IOCTL_SIZE = 312  # struct dm_ioctl
_DM_TABLE_STATUS = (3 << 30) | (_DM_IOCTL_SIZE << 16) | (0xFD << 8) | 12  # _IOWR(0xfd, 12)
_DM_STATUS_TABLE_FLAG = 1 << 4
_DM_BUFFER_FULL_FLAG = 1 << 8
_DM_SPEC = struct.Struct("<QQiI16s")  # struct dm_target_spec


def dm_table(rdev: int, buffer: int = 16384) -> tuple[tuple[int, int, str, str], ...] | None:
    """The live table of the device-mapper device ``rdev``: (start, length, target type,
    parameters) per target, sectors of 512 bytes. None when it cannot be read (not root)."""
    buf = bytearray(buffer)
    struct.pack_into("<IIIIIiIII", buf, 0, 4, 0, 0, buffer, _DM_IOCTL_SIZE, 0, 0,
                     _DM_STATUS_TABLE_FLAG, 0)
    struct.pack_into("<Q", buf, 40, rdev)
    try:
        fd = os.open(_DM_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.ioctl(fd, _DM_TABLE_STATUS, buf, True)
    except OSError:
        return None
    finally:
        os.close(fd)
    data_start, count = struct.unpack_from("<II", buf, 16)
    flags, = struct.unpack_from("<I", buf, 28)
    if flags & _DM_BUFFER_FULL_FLAG:
        return dm_table(rdev, buffer * 4) if buffer < (1 << 22) else None
    targets = []
    at = data_start
    for _ in range(count):
        start, length, _status, nxt, kind = _DM_SPEC.unpack_from(buf, at)
        params_at = at + _DM_SPEC.size
        params = bytes(buf[params_at:buf.index(0, params_at)]).decode("ascii", "replace")
        targets.append((start, length, kind.rstrip(b"\0").decode("ascii", "replace"), params))
        at = data_start + nxt
    return tuple(targets)


def _sys(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


_DM_UUID_RE = re.compile(r"LVM-[A-Za-z0-9]{32}([A-Za-z0-9]{32})\Z")


def active_linear_lv(vg: str, lv: str) -> ActiveLv | None:
    """The active, plain linear LV ``vg/lv`` as device-mapper has it; None for anything
    else (inactive, thin, snapshot or origin of one, striped, raid, cached, ...)."""
    try:
        st = os.stat(f"/dev/{vg}/{lv}")
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    sysfs = f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    uuid = _DM_UUID_RE.match(_sys(f"{sysfs}/dm/uuid") or "")
    if uuid is None or _sys(f"{sysfs}/dm/name") != dm_name(vg, lv):
        return None
    table = dm_table(st.st_rdev)
    if not table:
        return None
    extents: list[tuple[str, int, int]] = []
    labels: dict[str, PvLabel | None] = {}
    for start, length, kind, params in table:
        parts = params.split()
        if kind != "linear" or len(parts) != 2 or not re.fullmatch(r"\d+:\d+", parts[0]) \
                or not parts[1].isdigit():
            return None
        kernel = os.path.basename(os.path.realpath(f"/sys/dev/block/{parts[0]}"))
        if not kernel or kernel.startswith("dm-"):
            return None  # a PV on device-mapper (multipath, crypt): lvm names those itself
        pv = f"/dev/{kernel}"
        if pv not in labels:
            labels[pv] = read_label(pv)
        label = labels[pv]
        offset = int(parts[1]) * SECTOR - label.pe_start if label is not None else -1
        if offset < 0 or sum(e[2] for e in extents) != start * SECTOR:
            return None
        extents.append((pv, offset, length * SECTOR))
    return ActiveLv(uuid=format_uuid(uuid.group(1)), size=sum(e[2] for e in extents),
                    extents=tuple(extents))


def pv_of_active_lv(vg: str, tries: int = 4) -> str | None:
    """A PV of ``vg`` found through one of its active LVs (``/dev/VG/*``, whose device-mapper
    device lies on it); None when the VG has no active LV on a plain device. Only a hint:
    the metadata read from it must still name the VG."""
    try:
        names = sorted(os.listdir(f"/dev/{vg}"))[:tries]
    except OSError:
        return None
    for name in names:
        try:
            rdev = os.stat(f"/dev/{vg}/{name}").st_rdev
            slaves = sorted(os.listdir(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}/slaves"))
        except OSError:
            continue
        plain = [s for s in slaves if not s.startswith("dm-") and "/" not in s]
        if plain:
            return f"/dev/{plain[0]}"
    return None
