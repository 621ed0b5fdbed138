"""The ``fs`` backend: a file system on one source device, mounted on the target directory.

``FsBackend`` is a ``DirBackend``: volumes (and every optional volume ability), sizes,
the target directory and pool-delete are exactly the ``dir`` code on the mount point. The
manager calls volume operations only on an active pool, and active means mounted here.
This module adds what a device brings:

- build: the target directory as ``dir`` makes it; with ``--overwrite`` (signatures wiped,
  then ``mkfs`` with libvirt's force flag) or ``--no-overwrite`` (only on a device where
  blkid and wipefs find nothing) a new file system of the pool's format. Plain build never
  touches the device. Unlike libvirt, no build ever writes over data without --overwrite.
- start: ``mount -o nodev,nosuid,noexec[,fs:mount_opts] [-t FMT] DEV TARGET``; nothing when
  the device is already mounted there (as libvirt); refused when something else is.
- stop: ``umount TARGET``, only when it is this pool's device that is mounted there.
- check: the device is mounted on the target.

``NetfsBackend`` (backends/netfs.py) is this class with another source: the hooks
``_source`` (what is mounted), ``_is_source`` (is a mount entry ours) and ``_mount_source``
(the mount itself) are all it changes.

May run: blkid, wipefs, mkfs, mount, umount (and qemu-img for image volumes, via ``files``).
"""

from __future__ import annotations

import os

from kvmpool.backends.base import Overwrite
from kvmpool.backends.devices import prepare_for_writing, require_device, the_device
from kvmpool.backends.dir import DirBackend, make_target, target_of
from kvmpool.errors import HostCommandFailed, InUse, InvalidArgument, InvalidState
from kvmpool.host import blkid, mkfs, mount
from kvmpool.model import PoolDef


class FsBackend(DirBackend):

    umount_timeout = mount.MOUNT_TIMEOUT

    # ------------------------------------------------------------ mount state

    def _mount(self, pool: PoolDef) -> mount.MountEntry | None:
        """What is mounted on the pool's target right now, if anything."""
        target = os.path.realpath(target_of(pool))
        return mount.mounted_at(mount.read_mountinfo(), target)

    def _source(self, pool: PoolDef) -> str:
        """What is mounted on the target: the device."""
        return the_device(pool)

    def _is_source(self, entry: mount.MountEntry, pool: PoolDef) -> bool:
        return mount.same_device(entry, self._source(pool))

    def _mounted(self, pool: PoolDef) -> bool:
        entry = self._mount(pool)
        return entry is not None and self._is_source(entry, pool)

    def _require_mounted(self, pool: PoolDef) -> None:
        if not self._mounted(pool):
            raise InvalidState(
                f"'{self._source(pool)}' is not mounted on '{target_of(pool)}'",
                hint=f"start the pool: kvmpool pool-start {pool.name}")

    # ------------------------------------------------------------ lifecycle

    def check(self, pool: PoolDef) -> bool:
        return self._mounted(pool)

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        device = the_device(pool)
        target = target_of(pool)
        if os.path.exists(target) and not os.path.isdir(target):
            raise InvalidArgument(f"cannot build pool: '{target}' exists and is not a directory")
        if overwrite is not Overwrite.DEFAULT:
            fmt = mkfs.check_makeable(pool.source.format)
            require_device(device)
            entry = self._mount(pool)
            if entry is not None and mount.same_device(entry, device):
                raise InUse(f"cannot format {device}: it is mounted on '{target}'")
            prepare_for_writing(self.ctx, device, overwrite, what=f"a new {fmt} file system")
            argv = mkfs.mkfs_argv(fmt, device)
            try:
                self.ctx.runner.run(argv, timeout=mkfs.MKFS_TIMEOUT)
            except HostCommandFailed as err:
                raise mkfs.classify(err, fmt=fmt,
                                    device=device) from None
        make_target(self.ctx, target, pool.target.permissions)

    def start(self, pool: PoolDef) -> None:
        source = self._source(pool)
        target = target_of(pool)
        if not os.path.isdir(target):
            reason = "not a directory" if os.path.exists(target) else "no such directory"
            raise InvalidState(f"cannot mount on '{target}': {reason}",
                               hint=f"make it with: kvmpool pool-build {pool.name}")
        entry = self._mount(pool)
        if entry is not None:
            if self._is_source(entry, pool):
                return  # already mounted there, as libvirt accepts
            raise InUse(f"'{target}' already has {entry.source} ({entry.fstype}) mounted on it",
                        hint="unmount it, or give the pool another target")
        self._mount_source(pool, source, target)

    def _mount_source(self, pool: PoolDef, device: str, target: str) -> None:
        require_device(device)
        fmt = pool.source.format
        if fmt and fmt != "auto":
            self._check_format(device, fmt)
        argv = mount.mount_argv(device, target, fmt, pool.fs_mount_opts)
        try:
            self.ctx.runner.run(argv, timeout=mount.MOUNT_TIMEOUT)
        except HostCommandFailed as err:
            raise mount.classify(err, device=device,
                                 fmt=fmt) from None

    def _check_format(self, device: str, fmt: str) -> None:
        """Refuse to mount a device whose file system is not the declared one."""
        found = blkid.Probe(self.ctx.runner).blkid(device)
        types = [s.type for s in found if not s.partition_table]
        if fmt in types:
            return
        what = blkid.describe(found) if found else "no file system"
        raise InvalidArgument(f"cannot mount {device} as {fmt}: it holds {what}",
                              hint="check the pool's <device> and <format>")

    def stop(self, pool: PoolDef) -> None:
        if not self._mounted(pool):
            return
        try:
            self.ctx.runner.run(mount.umount_argv(target_of(pool)), timeout=self.umount_timeout)
        except HostCommandFailed as err:
            raise mount.classify_umount(err,
                                        target=target_of(pool)) from None

    # ------------------------------------------------------------ sizes: the dir code

    def refresh(self, pool: PoolDef) -> PoolDef:
        """statvfs of the mount point; an unmounted pool fails (the manager deactivates it)."""
        if self.ctx.runner.dry_run and not self._mounted(pool):
            return pool  # a dry-run pool-start mounted nothing
        self._require_mounted(pool)
        return super().refresh(pool)  # its start() check finds the mount and returns
