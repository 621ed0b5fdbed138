"""Format detection: one open, a 64 KiB read at offset 0, the last 512 bytes when needed.

Runs no host commands. Detection follows qemu's probe (the magic numbers and version
checks of each driver) so that ``format`` and ``capacity`` equal ``qemu-img info``; where
qemu has no magic, we look further (see ``ImageInfo``):

* a fixed VHD (footer only at the end, valid checksum) is ``vpc``; qemu says raw;
* a UDIF ``koly`` trailer is ``dmg`` whatever the file name; qemu goes by ``.dmg``;
* ``CD001`` at 32769 is ``iso`` (libvirt's name); qemu says raw, same capacity;
* UML ``OOOM`` v2 is ``cow``; qemu says raw.

A few formats need one more read: a backing name or vmdk descriptor beyond 64 KiB, the
VHD dynamic header, the VHDX headers and metadata. ``probe`` never raises for bad
content: a bad header comes back with ``corrupt`` set. Only ``open`` errors propagate.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable

from kvmpool.formats import microsoft, others, qemu_native, vmdk
from kvmpool.formats._buf import Source, Truncated, be32
from kvmpool.formats.info import ImageInfo

HEAD_SIZE = 64 << 10
_INT64_MAX = (1 << 63) - 1

Parser = Callable[[Source], ImageInfo]


def _tail(src: Source) -> bytes:
    return src.tail(512) if src.size >= 512 else b""


def _vpc_any(src: Source) -> ImageInfo:
    if src.head[:8] == microsoft.VPC_COOKIE:
        return microsoft.parse_vpc(src, src.head[:512], at_end=False)
    tail = _tail(src)
    if tail[:8] == microsoft.VPC_COOKIE:
        return microsoft.parse_vpc(src, tail, at_end=True)
    return ImageInfo("vpc", 0, corrupt="no VHD footer")


def _fixed_vpc(tail: bytes) -> bool:
    return tail[:8] == microsoft.VPC_COOKIE and microsoft.vpc_checksum_ok(tail)


def _vmdk_any(src: Source) -> ImageInfo:
    magic = src.head[:4]
    if magic == vmdk.KDMV:
        return vmdk.parse_kdmv(src)
    if magic == vmdk.COWD:
        return vmdk.parse_cowd(src)
    if vmdk.looks_like_descriptor(src.head):
        return vmdk.parse_descriptor_file(src)
    return ImageInfo("vmdk", 0, corrupt="no vmdk header or descriptor")


def _need(check: Callable[[bytes], bool], parser: Parser, fmt: str) -> Parser:
    def run(src: Source) -> ImageInfo:
        if not check(src.head):
            return ImageInfo(fmt, 0, corrupt=f"no {fmt} header")
        return parser(src)

    return run


def _qcow_version(head: bytes, want: int) -> bool:
    if head[:4] != qemu_native.QCOW_MAGIC or len(head) < 8:
        return False
    version = be32(head, 4)
    return version == 1 if want == 1 else version >= 2


def _dmg_any(src: Source) -> ImageInfo:
    return others.parse_dmg(src, _tail(src))


# Parsers used when the caller already knows the format (e.g. recorded by an overlay).
_BY_FORMAT: dict[str, Parser] = {
    "raw": others.parse_raw,
    "iso": lambda src: others.parse_raw(src, "iso"),
    "qcow2": _need(lambda h: _qcow_version(h, 2), qemu_native.parse_qcow2, "qcow2"),
    "qcow": _need(lambda h: _qcow_version(h, 1), qemu_native.parse_qcow, "qcow"),
    "qed": _need(lambda h: h[:4] == qemu_native.QED_MAGIC, qemu_native.parse_qed, "qed"),
    "cow": _need(lambda h: h[:4] == qemu_native.COW_MAGIC, qemu_native.parse_cow, "cow"),
    "vmdk": _vmdk_any,
    "vpc": _vpc_any,
    "vhdx": _need(lambda h: h[:8] == microsoft.VHDX_MAGIC, microsoft.parse_vhdx, "vhdx"),
    "vdi": _need(others.is_vdi, others.parse_vdi, "vdi"),
    "parallels": _need(others.is_parallels, others.parse_parallels, "parallels"),
    "luks": _need(lambda h: h[:6] == others.LUKS_MAGIC, others.parse_luks, "luks"),
    "bochs": _need(others.is_bochs, others.parse_bochs, "bochs"),
    "cloop": _need(others.is_cloop, others.parse_cloop, "cloop"),
    "dmg": _dmg_any,
}

KNOWN_FORMATS = frozenset(_BY_FORMAT)


def _detect(src: Source) -> tuple[str, Parser]:
    """The format name and parser for ``src``, by magic number (qemu's probe order)."""
    h = src.head
    magic4 = h[:4]
    if magic4 == qemu_native.QCOW_MAGIC and len(h) >= 8:
        version = be32(h, 4)
        if version == 1:
            return "qcow", qemu_native.parse_qcow
        if version >= 2:
            return "qcow2", qemu_native.parse_qcow2
    if magic4 == qemu_native.QED_MAGIC and len(h) >= 64:
        return "qed", qemu_native.parse_qed
    if magic4 == vmdk.KDMV:
        return "vmdk", vmdk.parse_kdmv
    if magic4 == vmdk.COWD:
        return "vmdk", vmdk.parse_cowd
    if h[:8] == microsoft.VPC_COOKIE:
        return "vpc", _vpc_any
    if h[:8] == microsoft.VHDX_MAGIC:
        return "vhdx", microsoft.parse_vhdx
    if others.is_vdi(h):
        return "vdi", others.parse_vdi
    if others.is_parallels(h):
        return "parallels", others.parse_parallels
    if h[:6] == others.LUKS_MAGIC and len(h) >= 8:
        return "luks", others.parse_luks  # LUKS2 comes back corrupt: qemu cannot open it
    if others.is_bochs(h):
        return "bochs", others.parse_bochs
    if len(h) >= 8 and magic4 == qemu_native.COW_MAGIC and be32(h, 4) == 2:
        return "cow", qemu_native.parse_cow
    if vmdk.looks_like_descriptor(h):
        return "vmdk", vmdk.parse_descriptor_file
    if others.is_cloop(h) and len(h) >= 136:
        return "cloop", others.parse_cloop
    tail = _tail(src)
    if tail[:4] == others.DMG_MAGIC:
        return "dmg", lambda s: others.parse_dmg(s, tail)
    if _fixed_vpc(tail):
        return "vpc", lambda s: microsoft.parse_vpc(s, tail, at_end=True)
    if others.is_iso(h):
        return "iso", lambda s: others.parse_raw(s, "iso")
    return "raw", others.parse_raw


def probe_fd(fd: int, path: str, size: int, *, format: str | None = None) -> ImageInfo:
    """Probe an open file of ``size`` bytes; ``path`` resolves relative backing names.

    With ``format`` the header is read as that format only (never guessed): use it for
    volumes whose format kvmpool recorded and for backing files whose overlay records one.
    """
    fmt = format or "raw"
    try:
        head = os.pread(fd, min(HEAD_SIZE, max(size, 0)), 0)
        actual = size if len(head) >= min(HEAD_SIZE, size) else len(head)  # file shrank
        src = Source(fd, path, actual, head)
        if format is None:
            fmt, parser = _detect(src)
        else:
            parser = _BY_FORMAT.get(format, _unknown(format))
        info = parser(src)
        if info.capacity > _INT64_MAX and info.corrupt is None:
            # qemu keeps sizes in signed 64-bit integers and refuses anything larger.
            info = dataclasses.replace(info, corrupt="virtual size out of range")
        return info
    except Truncated as e:
        return ImageInfo(fmt, 0, corrupt=f"truncated {fmt} header: {e}")
    except OSError as e:
        return ImageInfo(fmt, 0, corrupt=f"read error: {e.strerror or e}")
    except (ValueError, IndexError, OverflowError, UnicodeError) as e:  # defence in depth
        return ImageInfo(fmt, 0, corrupt=f"unreadable {fmt} header: {e}")


def _unknown(fmt: str) -> Parser:
    def run(src: Source) -> ImageInfo:
        return ImageInfo(fmt, 0, corrupt=f"unknown format {fmt!r}")

    return run


def probe(path: str, *, format: str | None = None) -> ImageInfo:
    """Probe the image at ``path`` (a regular file or a block device).

    Raises ``OSError`` only when the file cannot be opened. Anything that is neither a
    regular file nor a block device (FIFO, socket, directory) comes back ``corrupt``
    without being read. Runs no host commands.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            size = st.st_size
        elif stat.S_ISBLK(st.st_mode):
            try:
                size = os.lseek(fd, 0, os.SEEK_END)
            except OSError as e:
                return ImageInfo(format or "raw", 0, corrupt=f"cannot size device: {e.strerror}")
        else:
            return ImageInfo(format or "raw", 0, corrupt="not a regular file or block device")
        return probe_fd(fd, path, size, format=format)
    finally:
        os.close(fd)
