"""mkfs: the argv libvirt builds for an fs pool's ``pool-build --overwrite``, and its errors.

libvirt runs ``mkfs -t FMT [-f (xfs) | -F (ext2/3/4) | -I (vfat)] DEV``: the flag makes
each mkfs write over what it would otherwise refuse. kvmpool adds ``-f`` for btrfs too
(libvirt passes nothing there, so its mkfs.btrfs refuses any device that holds data).
kvmpool makes only the file systems in ``MAKEABLE``; the other names libvirt accepts for
an fs pool (ufs, iso9660, udf, gfs, gfs2, hfs+, ocfs2, vmfs) can be mounted, not made.

Host commands it may run: mkfs and the mkfs.FMT it calls (e2fsprogs, xfsprogs,
btrfs-progs, dosfstools).
"""

from __future__ import annotations

import re

from kvmpool.errors import HostCommandFailed, InUse, InvalidArgument, KvmpoolError, ToolMissing
from kvmpool.host.run import PACKAGES

MKFS_TIMEOUT = 600.0

# format -> the flag that lets its mkfs write over existing data
FORCE_FLAGS: dict[str, str] = {
    "ext2": "-F", "ext3": "-F", "ext4": "-F", "xfs": "-f", "btrfs": "-f", "vfat": "-I",
}
MAKEABLE = tuple(FORCE_FLAGS)

_PACKAGES = {"ext2": "e2fsprogs", "ext3": "e2fsprogs", "ext4": "e2fsprogs",
             "xfs": "xfsprogs", "btrfs": "btrfs-progs", "vfat": "dosfstools"}


def check_makeable(fmt: str | None) -> str:
    """The format to make, or InvalidArgument naming the ones kvmpool can make."""
    if not fmt or fmt == "auto":
        raise InvalidArgument(
            "cannot format the device: the pool's source format is 'auto'",
            hint="name the file system to make in <format type=...> (e.g. ext4)")
    if fmt not in FORCE_FLAGS:
        raise InvalidArgument(f"kvmpool cannot make {fmt} file systems",
                              hint="it can make: " + ", ".join(MAKEABLE))
    return fmt


def mkfs_argv(fmt: str, device: str) -> list[str]:
    """>>> mkfs_argv("ext4", "/dev/sdb1")
    ['mkfs', '-t', 'ext4', '-F', '/dev/sdb1']
    """
    return ["mkfs", "-t", check_makeable(fmt), FORCE_FLAGS[fmt], device]


_MISSING = re.compile(r"failed to execute (mkfs\.\S+): No such file")


def classify(err: HostCommandFailed, *, fmt: str,
             device: str) -> KvmpoolError:
    """A failed mkfs as an error the user can act on."""
    text = err.stderr
    missing = _MISSING.search(text)
    if missing:
        package = _PACKAGES.get(fmt) or PACKAGES.get(missing.group(1))
        return ToolMissing(f"'{missing.group(1)}' is not installed",
                           hint=f"install it: apt-get install {package}" if package else None)
    if "is mounted" in text or "busy" in text.lower():
        return InUse(f"cannot make a file system on {device}: it is mounted or in use")
    if "too small" in text.lower() or "Filesystem must be larger" in text:
        return InvalidArgument(f"{device} is too small for an {fmt} file system"
                               if fmt[:1] in "aeiox" else
                               f"{device} is too small for a {fmt} file system")
    return err
