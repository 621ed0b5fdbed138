"""The ``logical`` backend: a pool is an LVM volume group, volumes are its logical volumes.

As libvirt: build = pvcreate + vgcreate, start/stop = vgchange -aly/-aln, delete = vgremove
and pvremove, sizes from the VG, volumes from ``lvs`` (JSON reports), keys are LV UUIDs.
Beyond libvirt: a build never writes over a device holding data without ``--overwrite``;
volumes can be resized, cloned from any local volume (a qcow2 file into an LV too), and
snapshotted with kvmpool's snapshot verbs (classic snapshots with a size, thin snapshots).
A pool may adopt an existing VG: without source devices, build creates nothing.

Few lvm commands (each costs a process and a device scan): the questions asked on every
command (is the pool there, does this volume exist, what is it, which volumes are there,
how big is the VG and how much of it is free) are answered from the PV's metadata and
device-mapper (``kvmpool.host.lvmdisk``) when they can be, else by one report; vol-create-as
is one lvcreate, vol-delete one lvremove (lvm's own refusals, "already exists", "in use",
are classified).

Interruptions: lvcreate commits an LV at once or not at all. Ctrl-C stops it and removes
what it made; a SIGKILL of kvmpool alone lets the lvcreate it started finish (the LV is
then whole). A clone or create-from copies into an LV under a temporary name
(``.kvmpool-new-...``, never listed) renamed only once the data is in: an interrupted copy
never leaves an LV under the volume's name. Ctrl-C removes the temporary LV; after a
SIGKILL it stays until the next clone into the pool or pool-start removes it (both run
under the pool's lock, so no other kvmpool is still making it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import secrets
from collections.abc import Iterator

from kvmpool import copy
from kvmpool.backends import devices, lun
from kvmpool.backends.base import Context, CreateOptions, Overwrite, Reflink
from kvmpool.copy import Progress
from kvmpool.errors import (
    AlreadyExists,
    InUse,
    InvalidArgument,
    InvalidState,
    KvmpoolError,
    NotFound,
    Unsupported,
)
from kvmpool.host import lvmdisk
from kvmpool.host.lvm import LogicalVolume, Lvm
from kvmpool.model import (
    Extent,
    ExtentDevice,
    PoolDef,
    Snapshot,
    ThinUsage,
    VolTarget,
    VolType,
    VolumeDef,
)
from kvmpool.names import TEMP_PREFIX

log = logging.getLogger(__name__)

SNAP_PREFIX = "snap_"
# Above this many LVs, one lvs report is quicker than reading each LV from device-mapper.
_FAST_LIST_MAX = 64
# LVM's own name rules (lvm(8) "VALID NAMES"), plus room for the snapshot prefix.
_LV_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}\Z")
_RESERVED = ("_cdata", "_cmeta", "_corig", "_mimage", "_mlog", "_pmspare", "_rimage",
             "_rmeta", "_tdata", "_tmeta", "_vorigin", "_vdata")


def vg_of(pool: PoolDef) -> str:
    name = pool.source.name or pool.name
    return name


def check_lv_name(name: str) -> None:
    if not _LV_NAME.match(name) or name in (".", "..") or name.startswith(("snapshot", "pvmove")) \
            or any(r in name for r in _RESERVED):
        raise InvalidArgument(
            f"'{name}' is not a valid logical volume name",
            hint="use letters, digits and + _ . - (not starting with -), at most 127 characters")


class LogicalBackend:
    """May run: pvs, vgs, lvs, pvcreate, vgcreate, vgchange, vgremove, pvremove, lvcreate,
    lvremove, lvresize, lvconvert, lvchange, blkid, wipefs, qemu-img, scrub, blkdiscard."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.lvm = Lvm(ctx.runner, config=os.environ.get("KVMPOOL_LVM_CONFIG") or None)

    # ------------------------------------------------------------ pool

    def _vg_exists(self, vg: str) -> bool:
        try:
            self.lvm.vg(vg)
        except NotFound:
            return False
        return True

    def _check_devices(self, pool: PoolDef) -> None:
        """The VG exists and holds at least one of the pool's devices (libvirt's check)."""
        vg = vg_of(pool)
        # One pvs report answers both questions (a VG always has PVs): this runs on
        # every command that looks a logical pool up, so it must stay one LVM call.
        mine = {os.path.realpath(pv.name) for pv in self.lvm.pvs() if pv.vg == vg}
        if not mine:
            raise NotFound(f"volume group '{vg}' does not exist",
                           hint=f"create it with: kvmpool pool-build {pool.name}")
        wanted = {os.path.realpath(d.path) for d in pool.source.devices}
        if wanted and not wanted & mine:
            raise InvalidState(
                f"volume group '{vg}' is not on the pool's source devices "
                f"({', '.join(sorted(wanted))}); it is on {', '.join(sorted(mine)) or 'nothing'}",
                hint="fix <source><device> with kvmpool pool-edit")

    def _metadata(self, pool: PoolDef) -> lvmdisk.VgMetadata | None:
        """The VG's metadata as the pool's source devices hold it (no lvm command); for a
        pool without source devices (an adopted VG), as the PV under one of its active LVs
        holds it. None when it cannot be read for sure, or when two devices hold different
        versions of it (a commit that reached only some PVs: lvm then repairs it)."""
        vg = vg_of(pool)
        devices = [d.path for d in pool.source.devices]
        if not devices:
            pv = lvmdisk.pv_of_active_lv(vg)
            devices = [pv] if pv is not None else []
        found = [meta for meta in map(lvmdisk.vg_metadata, devices)
                 if meta is not None and meta.name == vg]
        if not found or any(meta.seqno != found[0].seqno for meta in found):
            return None
        return found[0]

    def check(self, pool: PoolDef) -> bool:
        """Runs on every command that looks the pool up: a pool device whose metadata names
        the VG answers it without lvm; otherwise one pvs report."""
        if self._metadata(pool) is not None:
            return True
        try:
            self._check_devices(pool)
        except KvmpoolError:
            return False
        return True

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        self._build_vg(pool, overwrite)
        if pool.thin_pool and not self._thin_pool(pool, required=False):
            vg = self.lvm.vg(vg_of(pool))
            extent = vg.extent_size or 4 << 20
            size = vg.free * 9 // 10 // extent * extent  # room for LVM's metadata spare
            if size <= 0:
                raise InvalidArgument(f"volume group '{vg.name}' has no free space for a thin pool")
            self.lvm.create_thin_pool(vg.name, pool.thin_pool, size)

    def _thin_pool(self, pool: PoolDef, *, required: bool = True) -> LogicalVolume | None:
        assert pool.thin_pool is not None
        try:
            lv = self.lvm.lv(vg_of(pool), pool.thin_pool)
        except NotFound:
            lv = None
        if lv is not None and not lv.is_thin_pool:
            raise InvalidState(f"'{vg_of(pool)}/{pool.thin_pool}' is not a thin pool")
        if lv is None and required:
            raise NotFound(f"thin pool '{vg_of(pool)}/{pool.thin_pool}' does not exist",
                           hint=f"create it with: kvmpool pool-build {pool.name}")
        return lv

    def _build_vg(self, pool: PoolDef, overwrite: Overwrite) -> None:
        vg = vg_of(pool)
        devs = [d.path for d in pool.source.devices]
        if self._vg_exists(vg):
            # Already built (by hand, as in the classic pvcreate + vgcreate walkthrough, or
            # by an earlier build): fine when the VG holds the pool's devices, refused when
            # a VG of that name lives elsewhere.
            on = {os.path.realpath(pv.name) for pv in self.lvm.pvs() if pv.vg == vg}
            wanted = {os.path.realpath(d) for d in devs}
            if wanted <= on:
                return
            raise AlreadyExists(
                f"volume group '{vg}' already exists on {', '.join(sorted(on))}, "
                f"not on {', '.join(sorted(wanted - on))}",
                hint="choose another --source-name, or define the pool without --source-dev "
                     "to use that volume group as it is")
        if not devs:
            raise InvalidArgument(
                f"volume group '{vg}' does not exist and the pool names no source device",
                hint="give one with pool-define-as --source-dev, or create the VG by hand")
        for dev in devs:
            devices.require_device(dev, block=True)
        for dev in devs:
            devices.prepare_for_writing(self.ctx, dev, overwrite, what="an LVM physical volume")
        made: list[str] = []
        try:
            for dev in devs:
                self.lvm.pvcreate([dev])
                made.append(dev)
            self.lvm.vgcreate(vg, devs)
        except BaseException:
            with contextlib.suppress(KvmpoolError):
                if made:
                    self.lvm.pvremove(made)
            raise

    def start(self, pool: PoolDef) -> None:
        self._check_devices(pool)
        if pool.thin_pool:
            self._thin_pool(pool)
        self.lvm.vgchange(vg_of(pool), active=True)
        self._sweep(vg_of(pool))

    def stop(self, pool: PoolDef) -> None:
        vg = vg_of(pool)
        if not self._vg_exists(vg):
            return
        try:
            self.lvm.vgchange(vg, active=False)
        except KvmpoolError as err:
            raise InUse(f"cannot deactivate volume group '{vg}': {err.message}",
                        hint="stop the guests using its volumes first") from None

    def delete(self, pool: PoolDef) -> None:
        vg = vg_of(pool)
        pvs = [pv.name for pv in self.lvm.pvs() if pv.vg == vg]
        if self._vg_exists(vg):
            self.lvm.vgremove(vg)
        for dev in pvs or [d.path for d in pool.source.devices]:
            with contextlib.suppress(KvmpoolError):
                self.lvm.pvremove([dev])

    def refresh(self, pool: PoolDef) -> PoolDef:
        """VG size and free space; for a thin-bound pool also what is provisioned against
        what the thin pool really holds, with its data and metadata fill."""
        meta = self._metadata(pool)
        if meta is None:  # else the check passed without lvm
            self._check_devices(pool)
        if meta is not None and meta.size is not None and meta.free is not None:
            size, free = meta.size, meta.free  # counted from the metadata: no vgs
        else:
            info = self.lvm.vg(vg_of(pool))
            size, free = info.size, info.free
        pool = dataclasses.replace(pool, capacity=size, available=free,
                                   allocation=size - free)
        if not pool.thin_pool:
            return pool
        lvs = self.lvm.lvs(vg_of(pool))
        tp = next((lv for lv in lvs if lv.name == pool.thin_pool and lv.is_thin_pool), None)
        if tp is None:
            raise NotFound(f"thin pool '{vg_of(pool)}/{pool.thin_pool}' does not exist")
        data_percent = tp.data_percent or 0.0
        used = int(tp.size * data_percent / 100)
        provisioned = sum(lv.size for lv in lvs if lv.is_thin and lv.pool_lv == tp.name)
        thin = ThinUsage(provisioned=provisioned, data_used=used, data_percent=data_percent,
                         metadata_percent=tp.metadata_percent or 0.0)
        return dataclasses.replace(pool, thin=thin)

    # ------------------------------------------------------------ volumes

    def _describe(self, pool: PoolDef, lv: LogicalVolume) -> VolumeDef:
        allocation = lv.size
        if lv.is_thin and lv.data_percent is not None:
            allocation = int(lv.size * lv.data_percent / 100)
        extents = tuple(
            ExtentDevice(path=dev.path, extents=(Extent(
                start=dev.first_extent * lv.extent_size,
                end=dev.first_extent * lv.extent_size + seg.size),))
            for seg in lv.segments for dev in seg.devices)
        backing = None
        if lv.backing is not None:
            backing = VolTarget(path=f"/dev/{lv.vg}/{lv.backing}")
        path = lv.path or f"/dev/{lv.vg}/{lv.name}"
        # A sparse LV (libvirt's) is a snapshot of a hidden zero origin: its capacity is
        # the origin's size, its allocation the copy-on-write store.
        capacity = lv.origin_size if lv.is_sparse and lv.origin_size else lv.size
        return VolumeDef(name=lv.name, type=VolType.BLOCK, key=lv.uuid, capacity=capacity,
                         allocation=allocation, source=extents,
                         target=VolTarget(path=path), backing_store=backing)

    def _describe_active(self, vg: str, name: str, lv: lvmdisk.ActiveLv) -> VolumeDef:
        """What ``_describe`` makes of lvs' report, for an active linear LV."""
        extents = tuple(ExtentDevice(path=pv, extents=(Extent(start=start, end=start + size),))
                        for pv, start, size in lv.extents)
        return VolumeDef(name=name, type=VolType.BLOCK, key=lv.uuid, capacity=lv.size,
                         allocation=lv.size, source=extents,
                         target=VolTarget(path=f"/dev/{vg}/{name}"))

    def _visible(self, lv: LogicalVolume) -> bool:
        if lv.name.startswith(TEMP_PREFIX):
            return False  # being made under a temporary name, or left by a killed kvmpool
        return not lv.hidden and not lv.is_thin_pool and lv.segtype not in ("cache-pool",)

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        fast = self._list_active_linear(pool)
        if fast is not None:
            return fast
        return [self._describe(pool, lv) for lv in self.lvm.lvs(vg_of(pool)) if self._visible(lv)]

    def _list_active_linear(self, pool: PoolDef) -> list[VolumeDef] | None:
        """A VG whose LVs are all active and plain linear (the common pool) is listed from
        its metadata and device-mapper, without lvs; None for any other VG. The metadata
        names hidden LVs too (thin pool parts, snapshot stores), which have no /dev/VG/LV:
        such a VG always goes to lvs."""
        meta = self._metadata(pool)
        if meta is None or len(meta.lvs) > _FAST_LIST_MAX:
            return None
        vg = vg_of(pool)
        result = []
        for name in sorted(meta.lvs):
            active = lvmdisk.active_linear_lv(vg, name)
            if active is None:
                return None
            if not name.startswith(TEMP_PREFIX):
                result.append(self._describe_active(vg, name, active))
        return result

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        """One volume. Without lvm when it can: an active linear LV from device-mapper, an
        LV the VG's metadata does not name is none; anything else from one lvs report."""
        if not _LV_NAME.match(name) or name.startswith(TEMP_PREFIX):
            return None
        vg = vg_of(pool)
        active = lvmdisk.active_linear_lv(vg, name)
        if active is not None:
            return self._describe_active(vg, name, active)
        meta = self._metadata(pool)
        if meta is not None and name not in meta.lvs:
            return None
        try:
            lv = self.lvm.lv(vg_of(pool), name)
        except NotFound:
            return None
        return self._describe(pool, lv) if self._visible(lv) else None

    def _lv(self, pool: PoolDef, vol: VolumeDef) -> LogicalVolume:
        return self.lvm.lv(vg_of(pool), vol.name)

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None:
        check_lv_name(vol.name)
        vg = vg_of(pool)
        if options.prealloc_metadata:
            raise InvalidArgument("metadata preallocation is not supported for block volumes")
        if vol.target.encryption is not None:
            raise Unsupported("kvmpool cannot create encrypted volumes yet")
        capacity = vol.capacity
        backing = vol.backing_store.path if vol.backing_store is not None else None
        with self._undo_on_failure(vg, vol.name):
            if backing is not None:
                origin = os.path.basename(backing.rstrip("/"))
                if not backing.startswith(f"/dev/{vg}/"):
                    raise InvalidArgument(
                        f"the backing volume of an LV must be an LV of '{vg}', not {backing}")
                size = capacity or self.lvm.lv(vg, origin).size
                self.lvm.create_snapshot(vg, origin, vol.name, size)
                return
            if capacity is None:
                raise InvalidArgument("volume capacity required for this storage pool")
            if pool.thin_pool:
                self.lvm.create_thin(vg, pool.thin_pool, vol.name, capacity)
            elif vol.allocation is not None and vol.allocation < capacity:
                self.lvm.create_sparse(vg, vol.name, capacity, vol.allocation)
            else:
                self.lvm.create_linear(vg, vol.name, capacity)

    @contextlib.contextmanager
    def _undo_on_failure(self, vg: str, name: str) -> Iterator[None]:
        """An interrupted or failed lvcreate never leaves a half-made LV behind.

        The manager has checked, under the pool's lock, that no LV of that name exists; an
        lvcreate refused because one appeared meanwhile (AlreadyExists) removes nothing.
        """
        try:
            yield
        except AlreadyExists:
            raise
        except BaseException:
            with contextlib.suppress(KvmpoolError):
                if name in {lv.name for lv in self.lvm.lvs(vg)}:
                    self.lvm.lvremove(vg, name)
            raise

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None:
        """lvremove refuses an open LV itself (classified as InUse): no extra lvs call."""
        try:
            self.lvm.lvremove(vg_of(pool), vol.name)
        except InUse as err:
            raise InUse(f"volume '{vol.name}' is open (in use by a guest or a mount)",
                        hint="stop what uses it first") from err

    # ------------------------------------------------------------ abilities

    def create_volume_from(
        self, pool: PoolDef, vol: VolumeDef, source: VolumeDef, *, reflink: Reflink,
        prealloc_metadata: bool, progress: Progress | None,
    ) -> None:
        if reflink is Reflink.ALWAYS:
            raise Unsupported("logical volumes cannot share extents (reflink) with a source")
        src_path = source.target.path
        if src_path is None or not src_path.startswith("/"):
            raise Unsupported(f"volume '{source.name}' has no local path to copy from")
        src_fmt = source.target.format if source.type is VolType.FILE else "raw"
        src_fmt = "raw" if src_fmt in (None, "iso") else src_fmt
        check_lv_name(vol.name)
        vg = vg_of(pool)
        self._sweep(vg)
        # The data goes into an LV under a temporary name, renamed only once complete: a
        # killed kvmpool never leaves an LV under the volume's name that looks whole.
        tmp = TEMP_PREFIX + secrets.token_hex(8)
        capacity = max(vol.capacity or 0, source.capacity or 0)
        new = dataclasses.replace(vol, name=tmp, capacity=capacity, allocation=None,
                                  backing_store=None)
        self.create_volume(pool, new, CreateOptions())
        dst = f"/dev/{vg}/{tmp}"
        try:
            if src_fmt == "raw":
                self._copy_raw(src_path, dst, bool(pool.thin_pool), progress)
            else:
                self.ctx.runner.run(["qemu-img", "convert", "-n", "-f", src_fmt, "-O", "raw",
                                     src_path, dst], timeout=24 * 3600)
            self.lvm.lvrename(vg, tmp, vol.name)
        except BaseException:
            with contextlib.suppress(KvmpoolError):
                self.lvm.lvremove(vg, tmp)
            raise

    def _sweep(self, vg: str) -> None:
        """Remove LVs a killed kvmpool left under a temporary name. Called under the pool's
        lock, which the process that made them held: they are not being made any more. One
        that is still open (a copy program that outlived kvmpool) stays for a later sweep."""
        for lv in self.lvm.lvs(vg):
            if lv.name.startswith(TEMP_PREFIX):
                try:
                    self.lvm.lvremove(vg, lv.name)
                except KvmpoolError as err:
                    log.warning("logical.sweep lv=%s/%s error=%s", vg, lv.name, err.message)

    def _copy_raw(self, src: str, dst: str, zeroed: bool, progress: Progress | None) -> None:
        if not self.ctx.runner.change(f"copy {src} into {dst}"):
            return
        src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            dst_fd = os.open(dst, os.O_WRONLY | os.O_CLOEXEC)
            try:
                length = min(os.lseek(src_fd, 0, os.SEEK_END), os.lseek(dst_fd, 0, os.SEEK_END))
                if zeroed:  # a new thin LV reads as zeros: holes can be skipped
                    copy.copy_sparse(src_fd, dst_fd, length=length,
                                     progress=progress or _quiet)
                else:  # a linear LV holds whatever its extents held: write every byte
                    copy.copy_full(src_fd, dst_fd, length=length, progress=progress or _quiet)
                os.fsync(dst_fd)
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)

    def resize_volume(
        self, pool: PoolDef, vol: VolumeDef, capacity: int, *, shrink: bool, allocate: bool
    ) -> None:
        lv = self._lv(pool, vol)
        if lv.is_snapshot:
            raise Unsupported(f"volume '{vol.name}' is an LVM snapshot and cannot be resized")
        self.lvm.lvresize(vg_of(pool), vol.name, capacity, shrink=capacity < lv.size)

    def wipe_volume(
        self, pool: PoolDef, vol: VolumeDef, algorithm: str, progress: Progress | None
    ) -> None:
        lv = self._lv(pool, vol)
        if lv.is_sparse:
            raise Unsupported("logical volumes backed by a snapshot cannot be wiped")
        if lv.open:
            raise InUse(f"volume '{vol.name}' is open", hint="stop what uses it first")
        path = vol.target.path or f"/dev/{lv.vg}/{lv.name}"
        if not self.ctx.runner.change(f"wipe {path} ({algorithm})"):
            return
        if algorithm == "trim":
            self.ctx.runner.run(["blkdiscard", path], timeout=3600)
        else:
            lun.wipe_device(self.ctx, path, algorithm, progress)

    # ------------------------------------------------------------ snapshots

    def _snap_lv(self, vol: VolumeDef, name: str) -> str:
        lv_name = f"{SNAP_PREFIX}{vol.name}_{name}"
        check_lv_name(lv_name)
        return lv_name

    def list_snapshots(self, pool: PoolDef, vol: VolumeDef) -> list[Snapshot]:
        prefix = f"{SNAP_PREFIX}{vol.name}_"
        result = []
        for lv in self.lvm.lvs(vg_of(pool)):
            # By name: a thin snapshot keeps no origin once the origin was replaced (revert).
            if not lv.name.startswith(prefix) or not (lv.is_snapshot or lv.is_thin):
                continue
            classic = lv.is_snapshot
            fill = lv.data_percent
            valid = not (classic and (lv.attr[4:5] == "I" or (fill or 0) >= 100.0))
            result.append(Snapshot(name=lv.name[len(prefix):], created=lv.created,
                                   origin=vol.name, size=lv.size if classic else None,
                                   fill=fill, valid=valid))
        return result

    def create_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str,
                        size: int | None = None) -> None:
        lv = self._lv(pool, vol)
        snap = self._snap_lv(vol, name)
        vg = vg_of(pool)
        if lv.is_thin:
            self.lvm.create_thin_snapshot(vg, vol.name, snap)
            return
        if lv.is_snapshot:
            raise Unsupported("LVM cannot snapshot a snapshot; snapshot its origin instead")
        extent = lv.extent_size or 4 << 20
        want = size or max(lv.size // 4, extent)
        self.lvm.create_snapshot(vg, vol.name, snap, -(-want // extent) * extent)

    def revert_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str) -> None:
        """Bring the origin back to the snapshot; the snapshot is kept (taken anew)."""
        lv = self._lv(pool, vol)
        if lv.open:
            raise InUse(f"volume '{vol.name}' is open: it cannot be reverted while in use",
                        hint="stop the guest using it first")
        vg = vg_of(pool)
        snap = self._snap_lv(vol, name)
        snap_lv = self.lvm.lv(vg, snap)
        if lv.is_thin:
            # The origin is replaced by a writable thin snapshot of the snapshot, which
            # itself stays (as Proxmox does). The volume's key (LV UUID) changes.
            self.lvm.lvremove(vg, vol.name)
            self.lvm.create_thin_snapshot(vg, snap, vol.name, activation_skip=False)
        else:
            if [s for s in self.list_snapshots(pool, vol) if s.name == name and not s.valid]:
                raise InvalidState(f"snapshot '{name}' of '{vol.name}' is full and invalid: "
                                   "it cannot be reverted to",
                                   hint="delete it; give new snapshots more space (--size)")
            size = snap_lv.size
            self.lvm.merge(vg, snap)
            self.lvm.create_snapshot(vg, vol.name, snap, size)

    def delete_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str) -> None:
        self.lvm.lvremove(vg_of(pool), self._snap_lv(vol, name))


def _quiet(_n: int) -> None:
    pass

