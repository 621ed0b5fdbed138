"""CRC-32C (Castagnoli), as VHDX uses for its headers and region table.

Pure Python, so it goes four bytes per step through two constant 64 Ki-entry tables, and
it skips runs of trailing zero bytes (most of a 4 KiB header or 64 KiB region table) by
applying the linear "advance over n zero bytes" operator in O(log n) steps. The tables
are constants, built once on the first VHDX probed.
"""

from __future__ import annotations

import array
import functools
import struct

_POLY = 0x82F63B78


def _byte_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_T8 = _byte_table()


@functools.cache
def _word_tables() -> tuple[array.array[int], array.array[int]]:
    """``lo[x]``: advance over two bytes ``x``; ``hi[x]``: over ``x`` then two zero bytes."""
    b = _T8
    lo = array.array(
        "I", (b[(b[x & 0xFF] ^ (x >> 8)) & 0xFF] ^ (b[x & 0xFF] >> 8) for x in range(65536))
    )
    hi = array.array("I", (lo[lo[x] & 0xFFFF] ^ (lo[x] >> 16) for x in range(65536)))
    return lo, hi


def _apply(op: tuple[int, ...], reg: int) -> int:
    out = 0
    i = 0
    while reg:
        if reg & 1:
            out ^= op[i]
        reg >>= 1
        i += 1
    return out


@functools.cache
def _zero_ops() -> tuple[tuple[array.array[int], ...], ...]:
    """Operators for 1, 2, 4 ... 2**20 zero bytes, each as four byte-indexed tables."""
    cols = tuple(_T8[(1 << i) & 0xFF] ^ ((1 << i) >> 8) for i in range(32))
    ops = []
    for _ in range(21):
        tables = []
        for lane in range(4):
            t = array.array("I", bytes(4 * 256))
            for b in range(1, 256):
                low = b & -b
                t[b] = t[b ^ low] ^ cols[8 * lane + low.bit_length() - 1]
            tables.append(t)
        ops.append(tuple(tables))
        cols = tuple(_apply(cols, col) for col in cols)  # square: twice as many zeros
    return tuple(ops)


def _advance_zeros(reg: int, n: int) -> int:
    ops = _zero_ops()
    k = 0
    while n:
        if n & 1:
            for _ in range(1 << max(0, k - len(ops) + 1)):  # past 1 MiB: repeat the largest
                t0, t1, t2, t3 = ops[min(k, len(ops) - 1)]
                reg = (
                    t0[reg & 0xFF] ^ t1[(reg >> 8) & 0xFF] ^ t2[(reg >> 16) & 0xFF] ^ t3[reg >> 24]
                )
        n >>= 1
        k += 1
    return reg


_ZERO_BLOCK = bytes(4096)


def _body_length(data: bytes) -> int:
    """Length of ``data`` without its trailing zero bytes (block compares, then rstrip)."""
    end = len(data)
    while end >= 4096 and data[end - 4096 : end] == _ZERO_BLOCK:
        end -= 4096
    start = max(0, end - 4096)
    return start + len(data[start:end].rstrip(b"\0"))


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data``."""
    body_len = _body_length(data)
    body = data[:body_len]
    zeros = len(data) - body_len
    reg = 0xFFFFFFFF
    lo, hi = _word_tables()
    whole = len(body) - len(body) % 4
    for word in struct.unpack(f"<{whole // 4}I", body[:whole]):
        word ^= reg
        reg = hi[word & 0xFFFF] ^ lo[word >> 16]
    for byte in body[whole:]:
        reg = _T8[(reg ^ byte) & 0xFF] ^ (reg >> 8)
    if zeros:
        reg = _advance_zeros(reg, zeros)
    return reg ^ 0xFFFFFFFF
