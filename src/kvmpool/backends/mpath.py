"""The ``mpath`` backend: the host's dm-multipath devices, as libvirt's
``storage_backend_mpath.c`` lists them.

The pool has no source and owns nothing: multipathd (multipath-tools) makes and removes
the maps; kvmpool only lists them and reads and writes their data.

- build, start, stop: nothing (libvirt: no callbacks).
- check: ``/dev/mapper`` (or the old ``/dev/mpath``) exists, as libvirt's.
- refresh: ``udevadm settle``, then every multipath map (``kvmpool.host.multipath``: dm
  devices whose uuid starts with ``mpath-``) becomes a block volume named ``dm-<minor>``,
  path and key ``/dev/mapper/<map name>`` (libvirt: "should use the LU's UUID instead";
  kvmpool keeps libvirt's key so definitions and scripts carry over), capacity =
  allocation = the map's size. Pool capacity = allocation = the sum, available 0.
  Whatever the pool's ``<target><path>`` says, paths are under ``/dev/mapper`` (libvirt).
- upload, download, wipe: on the map's device node (``kvmpool.transfer``, ``lun.wipe``).
  Creating, deleting and resizing volumes are not offered (caps.TABLE), as in libvirt.

Only one mpath pool can be defined on a host (``kvmpool.sources``).

May run: udevadm settle; scrub (wipe with a pattern).
"""

from __future__ import annotations

import dataclasses
import os

from kvmpool.backends import lun
from kvmpool.backends.base import Context, CreateOptions, Overwrite
from kvmpool.copy import Progress
from kvmpool.host import multipath, udev
from kvmpool.model import PoolDef, VolTarget, VolType, VolumeDef

DEV_DIRS = ("/dev/mapper", "/dev/mpath")


class MpathBackend:
    sys_block = multipath.SYS_BLOCK
    dev_dirs: tuple[str, ...] = DEV_DIRS

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def check(self, pool: PoolDef) -> bool:
        return any(os.path.isdir(d) for d in self.dev_dirs)

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        """Nothing to build: multipathd makes the maps."""

    def start(self, pool: PoolDef) -> None:
        """Nothing to start (libvirt neither); the first refresh lists the maps."""

    def stop(self, pool: PoolDef) -> None:
        """Nothing to stop: the maps stay, they are multipathd's."""

    def delete(self, pool: PoolDef) -> None:
        raise AssertionError("caps.TABLE forbids deleting an mpath pool")

    def refresh(self, pool: PoolDef) -> PoolDef:
        udev.settle(self.ctx.runner)
        vols = self._volumes()
        total = sum(v.capacity or 0 for v in vols)
        return dataclasses.replace(pool, capacity=total, allocation=total, available=0)

    def _volumes(self) -> list[VolumeDef]:
        return [VolumeDef(name=f"dm-{m.minor}", type=VolType.BLOCK, key=m.device,
                          capacity=m.size, allocation=m.size, target=VolTarget(path=m.device))
                for m in multipath.maps(self.sys_block)]

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        return self._volumes()

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        """By name (``dm-N``), key or path, or the map's name (the manager's lookup by a
        path in ``/dev/mapper`` passes the basename)."""
        return lun.find(self._volumes(), name)

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None:
        raise AssertionError("caps.TABLE forbids creating mpath volumes")

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None:
        raise AssertionError("caps.TABLE forbids deleting mpath volumes")

    # optional abilities (declared in caps.TABLE)

    def wipe_volume(
        self, pool: PoolDef, vol: VolumeDef, algorithm: str, progress: Progress | None
    ) -> None:
        lun.wipe(self.ctx, vol, algorithm, progress)
