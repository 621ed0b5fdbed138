"""Bounds-checked reads of integers and strings from header bytes.

Every accessor returns a default instead of raising when the field lies beyond the
bytes that were read, so parsers can check lengths once and stay readable.
"""

from __future__ import annotations

import os
import struct

_FMT = {
    ("B", False): struct.Struct("<B"),
    ("H", False): struct.Struct("<H"),
    ("I", False): struct.Struct("<I"),
    ("Q", False): struct.Struct("<Q"),
    ("B", True): struct.Struct(">B"),
    ("H", True): struct.Struct(">H"),
    ("I", True): struct.Struct(">I"),
    ("Q", True): struct.Struct(">Q"),
}


class Truncated(Exception):
    """A field lies beyond the end of the file: the header is truncated."""


def u(buf: bytes, off: int, code: str, *, be: bool) -> int:
    """Unsigned integer ``code`` (B H I Q) at ``off``; raises ``Truncated`` past the end."""
    st = _FMT[(code, be)]
    if off < 0 or off + st.size > len(buf):
        raise Truncated(f"field at byte {off} lies past the end of the header")
    value: int = st.unpack_from(buf, off)[0]
    return value


def be32(buf: bytes, off: int) -> int:
    return u(buf, off, "I", be=True)


def be64(buf: bytes, off: int) -> int:
    return u(buf, off, "Q", be=True)


def le16(buf: bytes, off: int) -> int:
    return u(buf, off, "H", be=False)


def le32(buf: bytes, off: int) -> int:
    return u(buf, off, "I", be=False)


def le64(buf: bytes, off: int) -> int:
    return u(buf, off, "Q", be=False)


def cstr(data: bytes) -> str:
    """Bytes up to the first NUL, decoded as UTF-8 with replacement (names are opaque)."""
    end = data.find(b"\0")
    if end >= 0:
        data = data[:end]
    return data.decode("utf-8", "surrogateescape")


class Source:
    """One open file: its size, the head bytes already read, and bounded extra reads.

    ``read`` serves from the head buffer when it can and otherwise does one ``pread``;
    it never reads more than ``limit`` bytes in one call and raises ``Truncated`` when
    the range lies past the end of the file.
    """

    __slots__ = ("fd", "head", "path", "size")

    def __init__(self, fd: int, path: str, size: int, head: bytes) -> None:
        self.fd = fd
        self.path = path
        self.size = size
        self.head = head

    def read(self, off: int, length: int, *, limit: int = 4 << 20) -> bytes:
        if off < 0 or length < 0 or length > limit:
            raise Truncated(f"refusing to read {length} bytes at {off}")
        if off + length > self.size:
            raise Truncated(f"{length} bytes at offset {off} lie past the end of the file")
        if off + length <= len(self.head):
            return self.head[off : off + length]
        data = os.pread(self.fd, length, off)
        if len(data) != length:
            raise Truncated(f"short read at offset {off}")
        return data

    def tail(self, length: int) -> bytes:
        """The last ``length`` bytes (or the whole file if it is shorter)."""
        length = min(length, self.size)
        return self.read(self.size - length, length)


def be16(buf: bytes, off: int) -> int:
    return u(buf, off, "H", be=True)
