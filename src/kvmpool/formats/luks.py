"""LUKS1 header checks, as qemu makes them before it reports anything about a LUKS volume.

Used for raw LUKS containers and for the LUKS header inside an encrypted qcow2. Big-endian:
magic @0, version u16 @6, cipher name @8, cipher mode @40, hash @72 (32-byte strings),
payload offset u32 @104 (sectors), key bytes u32 @108, digest iterations u32 @164,
8 key slots of 48 bytes @208 (state u32, iterations u32, salt, material offset u32 @40,
stripes u32 @44). Nothing here needs the passphrase.
"""

from __future__ import annotations

from kvmpool.formats._buf import be16, be32, cstr

MAGIC = b"LUKS\xba\xbe"
HEADER_LEN = 592
_SLOT_ENABLED = 0x00AC71F3
_SLOT_DISABLED = 0x0000DEAD
_STRIPES = 4000
_KEY_AREA_SECTORS = 4096 // 512  # key material starts after the first 4 KiB
_SLOT_ALIGN_SECTORS = 4096 // 512

_CIPHER_KEYS = {
    "aes": {16, 24, 32},
    "serpent": {16, 24, 32},
    "twofish": {16, 24, 32},
    "cast5": {16},
    "sm4": {16},
}
_HASH_SIZES = {
    "md5": 16,
    "sha1": 20,
    "sha224": 28,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "ripemd160": 20,
}
_MODES = {"ecb", "cbc", "xts", "ctr"}


def _mode_problem(cipher: str, mode_spec: str, key_bytes: int) -> str | None:
    mode, _, ivgen = mode_spec.partition("-")
    if mode not in _MODES:
        return f"cipher mode {mode_spec!r} not supported"
    key = key_bytes // 2 if mode == "xts" else key_bytes
    sizes = _CIPHER_KEYS.get(cipher)
    if sizes is None or key not in sizes:
        return f"cipher {cipher!r} with key size {key_bytes} bytes not supported"
    iv, _, iv_hash = ivgen.partition(":")
    if iv in ("plain", "plain64") and not iv_hash:
        return None
    if iv == "essiv":
        size = _HASH_SIZES.get(iv_hash)
        if size is None:
            return f"IV hash {iv_hash!r} not supported"
        if size not in sizes:
            return f"ESSIV hash {iv_hash!r} does not give a {cipher} key"
        return None
    return f"IV generator {ivgen!r} not supported"


def header_problems(h: bytes) -> list[str]:
    """Reasons qemu would refuse this LUKS header (empty when it would open it)."""
    if len(h) < HEADER_LEN or h[:6] != MAGIC:
        return ["no LUKS header"]
    version = be16(h, 6)
    if version != 1:
        return [f"LUKS version {version} (qemu opens only LUKS1)"]
    problems: list[str] = []
    cipher, mode, hash_name = cstr(h[8:40]), cstr(h[40:72]), cstr(h[72:104])
    payload = be32(h, 104)
    key_bytes = be32(h, 108)
    if hash_name not in _HASH_SIZES:
        problems.append(f"hash {hash_name!r} not supported")
    mode_problem = _mode_problem(cipher, mode, key_bytes)
    if mode_problem:
        problems.append(mode_problem)
    if payload < _KEY_AREA_SECTORS:
        problems.append("payload overlaps the LUKS header")
    if be32(h, 164) == 0:
        problems.append("key digest iteration count is zero")
    spans: list[tuple[int, int]] = []
    for i in range(8):
        slot = 208 + 48 * i
        state, iters = be32(h, slot), be32(h, slot + 4)
        start, stripes = be32(h, slot + 40), be32(h, slot + 44)
        sectors = -(-(key_bytes * stripes) // 512)
        length = -(-sectors // _SLOT_ALIGN_SECTORS) * _SLOT_ALIGN_SECTORS
        if stripes != _STRIPES:
            problems.append(f"key slot {i} is corrupt (stripes {stripes})")
        if state not in (_SLOT_ENABLED, _SLOT_DISABLED):
            problems.append(f"key slot {i} state is corrupt")
        elif state == _SLOT_ENABLED and iters == 0:
            problems.append(f"key slot {i} iteration count is zero")
        if start < _KEY_AREA_SECTORS:
            problems.append(f"key slot {i} overlaps the LUKS header")
        if start + length > payload:
            problems.append(f"key slot {i} overlaps the payload")
        for j, (s2, l2) in enumerate(spans):
            if start + length > s2 and s2 + l2 > start:
                problems.append(f"key slots {j} and {i} overlap")
        spans.append((start, length))
    return problems[:3]  # the first few reasons are enough for one line
