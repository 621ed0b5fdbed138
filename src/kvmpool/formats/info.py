"""The values that probing returns: ``ImageInfo``, ``BackingRef`` and ``ChainLink``.

They are plain frozen values with no behaviour beyond small helpers, so the pool layer
can keep them, compare them and turn them into ``VolumeInfo`` without touching files.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class BackingRef:
    """How an overlay names its backing file.

    ``raw`` is the name exactly as the header records it. ``path`` is that name resolved
    against the directory of the overlay (qemu's rule), or ``None`` when the name is a
    protocol string (``nbd://...``, ``rbd:pool/img``, ``json:{...}``) rather than a path.
    ``format`` is what the overlay records, or ``None``: it is never guessed by probing.
    """

    raw: str
    path: str | None
    format: str | None


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header of one image file says.

    ``format`` uses libvirt's names (raw qcow2 qcow cow qed vmdk vpc vdi iso luks dmg bochs
    cloop) and qemu's where libvirt has none (vhdx parallels). ``iso`` and ``cow`` are
    formats qemu does not know: qemu opens an iso as raw (same size) and cannot open cow;
    ``qemu_format()`` gives the name to hand to qemu. ``capacity`` equals the
    ``virtual-size`` of ``qemu-img info`` on the same file (for a fixed VHD: with ``-f vpc``;
    qemu's own probe only looks for a VHD footer at offset 0 and calls such files raw).

    ``corrupt`` is ``None`` for a header qemu would open, else a one-line reason; the other
    fields then hold whatever could be read safely.
    """

    format: str
    capacity: int
    backing: BackingRef | None = None
    encryption: str | None = None
    compat: str | None = None
    cluster_size: int | None = None
    lazy_refcounts: bool = False
    extended_l2: bool = False
    compression_type: str | None = None
    data_file: str | None = None
    extra_files: tuple[str, ...] = ()
    subformat: str | None = None
    corrupt: str | None = None


# qemu has no driver for these libvirt formats; None = qemu cannot open it at all.
_QEMU_NAMES: dict[str, str | None] = {"iso": "raw", "cow": None}


def qemu_format(fmt: str) -> str | None:
    """The qemu driver name for one of our format names (``iso`` -> ``raw``, ``cow`` -> None)."""
    return _QEMU_NAMES.get(fmt, fmt)


class LinkState(StrEnum):
    """How far ``backing_chain`` got with one link."""

    OK = "ok"  # probed; ``info`` is set
    MISSING = "missing"  # the named file does not exist
    UNREADABLE = "unreadable"  # exists but cannot be opened (permissions, a FIFO ...)
    NETWORK = "network"  # a protocol name (nbd, rbd, json: ...); not followed
    FORMAT_UNKNOWN = "format-unknown"  # the overlay did not record a format; not probed
    LOOP = "loop"  # the file is already in the chain
    TOO_DEEP = "too-deep"  # more links than ``max_depth``; not probed


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One image in a backing chain. Depth 0 is the image asked about.

    ``ref`` is how the overlay above names this link (``None`` for depth 0); ``path`` and
    ``format`` are the resolved path and the recorded format (for depth 0: probed, or
    what the caller said). ``info`` is set only when the link was probed (state OK).
    """

    depth: int
    path: str | None
    format: str | None
    state: LinkState
    ref: BackingRef | None = None
    info: ImageInfo | None = None
    problem: str | None = None
