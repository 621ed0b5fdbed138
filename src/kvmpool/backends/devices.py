"""Helpers shared by the backends whose pool lives on a source device (fs, disk).

kvmpool's rule, stronger than libvirt's: a build never writes over a device that holds
data (a file system, a partition table, an LVM PV, anything blkid or wipefs sees) unless
the user said ``--overwrite``; the refusal names what was found.
"""

from __future__ import annotations

import os
import stat

from kvmpool.backends.base import Context, Overwrite
from kvmpool.errors import InvalidArgument, InvalidState, NotFound
from kvmpool.host import blkid
from kvmpool.model import PoolDef


def the_device(pool: PoolDef) -> str:
    """The pool's one ``<source><device path=...>``."""
    devices = pool.source.devices
    if len(devices) != 1:
        raise InvalidArgument(
            f"pool '{pool.name}' ({pool.type}) needs exactly one source device, "
            f"it has {len(devices)}",
            hint="give one <device path='...'/> in <source> (pool-define-as --source-dev)")
    return devices[0].path


def require_device(path: str, *, block: bool = False) -> None:
    """The device exists (and, with ``block``, is a block device)."""
    try:
        st = os.stat(path)
    except OSError:
        raise NotFound(f"device path '{path}' doesn't exist") from None
    if block and not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"'{path}' is not a block device")


def prepare_for_writing(ctx: Context, device: str, overwrite: Overwrite, *,
                        what: str) -> None:
    """Refuse a device that holds data unless ``--overwrite``; with it, wipe the signatures.

    May run: blkid -p, wipefs --no-act (read-only), wipefs --all (only on --overwrite).
    """
    probe = blkid.Probe(ctx.runner)
    if overwrite is Overwrite.OVERWRITE:
        probe.wipe(device)
        return
    found = probe.signatures(device)
    if found:
        raise InvalidState(
            f"cannot write {what} on {device}: it holds {blkid.describe(found)}",
            hint="nothing was changed; pool-build --overwrite erases it")
