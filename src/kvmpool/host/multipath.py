"""The host's dm-multipath maps, read from sysfs: no command, no libdevmapper.

multipath-tools (multipathd, ``multipath``) gives every map it makes a device-mapper uuid
``mpath-<wwid>``; libvirt's mpath backend lists the device-mapper devices whose table is a
``multipath`` target, which on a host run by multipath-tools is the same set. Partitions
that kpartx maps on top of a multipath device (uuid ``part1-mpath-...``) are not maps.

What one map looks like in sysfs (kernel 6.1, multipath-tools 0.9.4; sizes in 512-byte
sectors; ``slaves`` are its paths)::

    /sys/block/dm-0/dev        253:0
    /sys/block/dm-0/size       65536
    /sys/block/dm-0/dm/name    mpatha
    /sys/block/dm-0/dm/uuid    mpath-360000000000000000e00000000010001
    /sys/block/dm-0/slaves/    sda sdb

Nothing here runs a command; ``sys_block`` is a parameter so tests give a fake tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SYS_BLOCK = "/sys/block"
UUID_PREFIX = "mpath-"
SECTOR = 512


@dataclass(frozen=True, slots=True)
class Map:
    name: str  # the map's name: /dev/mapper/<name>
    kernel: str  # dm-N
    minor: int
    wwid: str
    size: int  # bytes
    paths: tuple[str, ...]  # the path devices under it (sda, sdb)

    @property
    def device(self) -> str:
        return f"/dev/mapper/{self.name}"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:  # gone between listing and reading: the map was just removed
        return None


def read_map(kernel: str, sys_block: str = SYS_BLOCK) -> Map | None:
    """The map behind ``/sys/block/<kernel>``, or None if it is no multipath map (or gone)."""
    base = os.path.join(sys_block, kernel)
    uuid = _read(os.path.join(base, "dm", "uuid"))
    name = _read(os.path.join(base, "dm", "name"))
    dev = _read(os.path.join(base, "dev"))
    size = _read(os.path.join(base, "size"))
    if uuid is None or not uuid.startswith(UUID_PREFIX) or not name or dev is None:
        return None
    _major, _, minor = dev.partition(":")
    if not minor.isdigit() or size is None or not size.isdigit():
        return None
    try:
        paths = tuple(sorted(os.listdir(os.path.join(base, "slaves"))))
    except OSError:
        paths = ()
    return Map(name=name, kernel=kernel, minor=int(minor), wwid=uuid[len(UUID_PREFIX):],
               size=int(size) * SECTOR, paths=paths)


def maps(sys_block: str = SYS_BLOCK) -> list[Map]:
    """Every multipath map of the host, by minor number."""
    try:
        names = os.listdir(sys_block)
    except FileNotFoundError:
        return []
    found = [m for n in names if n.startswith("dm-") and (m := read_map(n, sys_block))]
    return sorted(found, key=lambda m: m.minor)
