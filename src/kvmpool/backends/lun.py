"""Helpers shared by the backends whose volumes are block devices the pool lists but does not
own (iscsi LUNs, multipath maps): the device is written in place, never created or removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from kvmpool import copy
from kvmpool.backends.base import Context
from kvmpool.copy import Progress
from kvmpool.errors import KvmpoolError, ToolMissing
from kvmpool.model import VolumeDef


def find(vols: Iterable[VolumeDef], name: str) -> VolumeDef | None:
    """A listed volume by name, key or path, or by the link's or map's name in the target
    directory (the manager looks a path up by its basename)."""
    for vol in vols:
        path = vol.target.path or ""
        if name in (vol.name, vol.key, path, os.path.basename(path)):
            return vol
    return None


def wipe(ctx: Context, vol: VolumeDef, algorithm: str, progress: Progress | None) -> None:
    """vol-wipe of a whole block device: zero in-process, scrub's patterns with scrub
    (caps.LUN_WIPE_ALGORITHMS: no trim, libvirt has none for these pools either).

    May run: scrub.
    """
    path = vol.target.path
    if path is None:
        raise KvmpoolError(f"volume '{vol.name}' has no path")
    if not ctx.runner.change(f"wipe {path} ({algorithm})"):
        return
    try:
        wipe_device(ctx, path, algorithm, progress)
    except OSError as err:  # a CD/DVD LU, a device gone, an I/O error
        raise KvmpoolError(f"cannot wipe {path}: {err.strerror}",
                           hint="only a writable LUN can be wiped") from None


def wipe_device(ctx: Context, path: str, algorithm: str, progress: Progress | None) -> None:
    """Overwrite all of a block device: zeros written here (then fsync), any other of
    scrub's patterns with scrub. The caller has checked the algorithm and asked the runner
    (dry run). Shared with logical volumes, which add trim.

    May run: scrub.
    """
    if algorithm == "zero":
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            copy.write_zeros(fd, 0, os.lseek(fd, 0, os.SEEK_END), progress or _quiet)
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    if shutil.which("scrub") is None:
        raise ToolMissing("Cannot find 'scrub' in path", hint="apt-get install scrub")
    ctx.runner.run(["scrub", "-f", "-p", algorithm, path], timeout=24 * 3600)


def _quiet(_done: int) -> None:
    """No progress to show."""
