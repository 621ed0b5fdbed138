"""The ``disk`` backend: a whole disk with a partition table; volumes are its partitions.

- build: ``parted -s DEV mklabel LABEL`` (dos/unknown -> msdos), refused when blkid or
  wipefs sees anything on the disk unless ``--overwrite`` (then its signatures are wiped
  first). libvirt refuses only a recognised label; kvmpool refuses any data.
- start/check: the device exists and carries the label the pool's format names, by
  libvirt's byte table (``host.blkid.disk_label``) and, on start, by parted too (a FAT file
  system on the whole disk has the dos boot signature but is no partition table).
- refresh: capacity, allocation, available and the free extents exactly as libvirt
  computes them from libparted's regions (see ``sizes``).
- volumes: partitions, named as the kernel names their nodes (sdb1, nvme0n1p1, loop0p1),
  path = the node (or its stable link in the pool's target directory), key = path.
  vol-create-as makes a partition of the requested size, its start aligned to 1 MiB, in the
  first free extent that holds it (libvirt: the smallest, cylinder-aligned on dos). As in
  libvirt the name must be the one the new partition will get; kvmpool checks that before
  writing anything, and removes the partition again if the kernel names it otherwise.
- delete: refused while partitions remain (as a dir pool refuses a non-empty directory);
  an empty disk loses its label (``wipefs --all``).

May run: parted, sfdisk, blkid, wipefs, udevadm.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from dataclasses import dataclass

from kvmpool.backends import files
from kvmpool.backends.base import Context, CreateOptions, Overwrite
from kvmpool.backends.devices import prepare_for_writing, require_device, the_device
from kvmpool.errors import (
    HostCommandFailed,
    InUse,
    InvalidArgument,
    InvalidState,
    KvmpoolError,
    VolumeNotFound,
)
from kvmpool.host import blkid, parted, udev
from kvmpool.host.links import links_to
from kvmpool.model import (
    Extent,
    ExtentDevice,
    FreeExtent,
    Permissions,
    PoolDef,
    VolTarget,
    VolType,
    VolumeDef,
)

ALIGNMENT = 1 << 20  # partition starts, as parted's "optimal" alignment on most disks
SECTOR = 512


def expected_label(pool: PoolDef) -> str:
    """The label libvirt's table must find: the pool's format, unknown meaning dos."""
    fmt = pool.source.format
    return "dos" if fmt in (None, "unknown") else fmt


def _libvirt_label(parted_label: str) -> str:
    return "dos" if parted_label == "msdos" else parted_label


@dataclass(frozen=True, slots=True)
class Layout:
    """The device's partition table: parted's regions plus sfdisk's type codes."""

    device: str
    table: parted.Table
    types: dict[int, str]  # partition start (bytes) -> type code

    @property
    def dos(self) -> bool:
        return self.table.label == "msdos"

    def format_of(self, part: parted.Region) -> str:
        code = self.types.get(part.start)
        if code is not None:
            return parted.format_of(code)
        return "none"

    def extended(self) -> parted.Region | None:
        for part in self.table.partitions:
            if self.dos and self.format_of(part) == "extended":
                return part
        return None

    def is_logical(self, region: parted.Region) -> bool:
        ext = self.extended()
        return ext is not None and ext.start <= region.start and region.end <= ext.end \
            and region != ext


def sizes(layout: Layout) -> tuple[int, int, int, tuple[FreeExtent, ...]]:
    """(capacity, allocation, available, free extents) as libvirt's disk backend has them.

    capacity: the largest end of any partition or free region; allocation: the sizes of
    the partitions, an extended one counting 0 (its logical partitions count themselves);
    available: the free regions, where one starting at byte 0 is moved to 512.
    """
    capacity = allocation = available = 0
    extents: list[FreeExtent] = []
    ext = layout.extended()
    for region in layout.table.regions:
        capacity = max(capacity, region.end)
        if region.free:
            start = SECTOR if region.start == 0 else region.start
            available += region.end - start
            extents.append(FreeExtent(start, region.end))
        elif region != ext:
            allocation += region.size
    return capacity, allocation, available, tuple(extents)


class DiskBackend:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------ reading

    def _layout(self, device: str) -> Layout:
        """May run: parted print (read-only), sfdisk --json (read-only)."""
        runner = self.ctx.runner
        result = runner.run(parted.print_argv(device), changes=False, check=False,
                            timeout=parted.PARTED_TIMEOUT)
        try:
            table = parted.parse_print(result.stdout)
        except ValueError:
            err = HostCommandFailed(
                f"parted cannot read {device}: "
                + (result.stderr.strip().splitlines() or ["no output"])[-1],
                argv=result.argv, returncode=result.returncode, stderr=result.stderr)
            raise parted.classify(err, device=device) from None
        types: dict[int, str] = {}
        if table.label in ("msdos", "gpt") and table.partitions:
            listed = runner.run(parted.sfdisk_argv(device), changes=False,
                                timeout=parted.PARTED_TIMEOUT)
            try:
                types = {p.start: p.type for p in parted.parse_sfdisk(listed.stdout)}
            except (ValueError, KeyError, TypeError) as err:
                raise KvmpoolError(f"cannot read sfdisk output for {device}: {err}") from None
        return Layout(device, table, types)

    @staticmethod
    def _head_label(device: str) -> str | None:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return blkid.disk_label(os.pread(fd, blkid.LABEL_BYTES, 0))
        finally:
            os.close(fd)

    def _require_label(self, pool: PoolDef) -> Layout:
        device = the_device(pool)
        require_device(device)
        want = expected_label(pool)
        head = self._head_label(device)
        layout = self._layout(device)
        found = _libvirt_label(layout.table.label)
        if head is None or found in ("unknown", "loop"):
            raise InvalidState(f"{device} has no partition table (unrecognized disk label)",
                               hint=f"write one: kvmpool pool-build {pool.name}")
        if head != want or found != want:
            have = found if found not in ("unknown", "loop") else head
            raise InvalidState(
                f"{device} has a {have} partition table, not the pool's {want}",
                hint="fix the pool's <format type=...>, or relabel the disk with "
                     "pool-build --overwrite (erases it)")
        return layout

    def _disk_name(self, device: str) -> str:
        return os.path.basename(os.path.realpath(device))

    def _volumes(self, pool: PoolDef, layout: Layout, *, details: bool) -> list[VolumeDef]:
        disk = self._disk_name(layout.device)
        ext = layout.extended()
        vols: list[VolumeDef] = []
        for part in layout.table.partitions:
            assert part.number is not None
            name = parted.partition_name(disk, part.number)
            node = "/dev/" + name
            path = stable_path(pool.target.path, node)
            capacity = allocation = physical = part.size
            if part == ext:
                allocation = sum(p.size for p in layout.table.partitions
                                 if p != ext and layout.is_logical(p))
                physical = 0
            perms = stamps = None
            if details:
                try:
                    st = os.stat(node)
                except OSError:
                    pass
                else:
                    perms = Permissions(mode=st.st_mode & 0o777, owner=st.st_uid,
                                        group=st.st_gid)
                    stamps = files.timestamps(st)
            vols.append(VolumeDef(
                name=name, type=VolType.BLOCK, key=path, capacity=capacity,
                allocation=allocation, physical=physical,
                source=(ExtentDevice(layout.device, (Extent(part.start, part.end),)),),
                target=VolTarget(path=path, format=layout.format_of(part),
                                 permissions=perms, timestamps=stamps)))
        return vols

    # ------------------------------------------------------------ lifecycle

    def check(self, pool: PoolDef) -> bool:
        device = the_device(pool)
        try:
            return self._head_label(device) == expected_label(pool)
        except OSError:
            return False

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        device = the_device(pool)
        label = parted.label_for(pool.source.format)
        require_device(device, block=True)
        if overwrite is Overwrite.OVERWRITE:
            _require_unused(device)
        prepare_for_writing(self.ctx, device, overwrite, what=f"a {label} partition table")
        try:
            self.ctx.runner.run(parted.mklabel_argv(device, label),
                                timeout=parted.PARTED_TIMEOUT)
        except HostCommandFailed as err:
            raise parted.classify(err, device=device) from None
        if not self.ctx.runner.dry_run:
            udev.settle(self.ctx.runner)

    def start(self, pool: PoolDef) -> None:
        self._require_label(pool)

    def stop(self, pool: PoolDef) -> None:
        """Nothing to undo: the partitions stay where they are."""

    def delete(self, pool: PoolDef) -> None:
        device = the_device(pool)
        require_device(device, block=True)
        layout = self._layout(device)
        if layout.table.partitions:
            names = ", ".join(v.name for v in self._volumes(pool, layout, details=False))
            raise InvalidState(f"cannot delete pool '{pool.name}': {device} still holds "
                               f"partitions ({names})",
                               hint=f"delete its volumes first (kvmpool vol-list {pool.name})")
        if layout.table.label in ("unknown", "loop"):
            return  # no label to remove (and a whole-disk file system is not ours)
        _require_unused(device)
        blkid.Probe(self.ctx.runner).wipe(device)

    def refresh(self, pool: PoolDef) -> PoolDef:
        layout = self._require_label(pool)
        capacity, allocation, available, extents = sizes(layout)
        devices = pool.source.devices
        first = dataclasses.replace(devices[0], free_extents=extents)
        source = dataclasses.replace(pool.source, devices=(first, *devices[1:]))
        return dataclasses.replace(pool, capacity=capacity, allocation=allocation,
                                   available=available, source=source)

    # ------------------------------------------------------------ volumes

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        return self._volumes(pool, self._layout(the_device(pool)), details=details)

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        for vol in self.list_volumes(pool, details=True):
            if name in (vol.name, os.path.basename(vol.target.path or "")):
                return vol
        return None

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None:
        if vol.target.encryption is not None:
            raise InvalidArgument("a partition cannot be created encrypted",
                                  hint="encrypt it inside the guest")
        if vol.backing_store is not None:
            raise InvalidArgument("a partition cannot have a backing store")
        if options.prealloc_metadata:
            raise InvalidArgument("metadata preallocation is not supported for block volumes")
        if not vol.capacity:
            raise InvalidArgument("volume capacity required for this storage pool")
        device = the_device(pool)
        layout = self._layout(device)
        plan = plan_partition(layout, self._disk_name(device), vol.target.format or "none",
                              vol.capacity)
        if vol.name != plan.name:
            raise InvalidArgument(f"invalid partition name '{vol.name}', expected '{plan.name}'",
                                  hint=f"the next partition on {device} will be {plan.name}")
        runner = self.ctx.runner
        try:
            runner.run(plan.argv(device), timeout=parted.PARTED_TIMEOUT)
        except HostCommandFailed as err:
            raise parted.classify(err, device=device) from None
        if runner.dry_run:
            return
        try:
            made = parted.by_number(self._layout(device).table.partitions, plan.number)
            if made is None or made.start != plan.start:
                raise KvmpoolError(f"parted did not make partition {plan.name} where asked "
                                   f"({plan.start}B)")
            if plan.part_type != "extended":  # an extended node exists but is no volume
                udev.wait_for(runner, "/dev/" + plan.name)
        except KvmpoolError:
            self._undo_create(device, plan)
            raise

    def _undo_create(self, device: str, plan: Plan) -> None:
        """Remove the partition a failed vol-create made (best effort: the error stands)."""
        for part in self._layout(device).table.partitions:
            if part.start == plan.start and part.number is not None:
                self.ctx.runner.run(parted.rm_argv(device, part.number), check=False,
                                    timeout=parted.PARTED_TIMEOUT)

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None:
        device = the_device(pool)
        layout = self._layout(device)
        disk = self._disk_name(device)
        number = parted.partition_number(disk, vol.name)
        part = parted.by_number(layout.table.partitions, number) if number else None
        if part is None or number is None:
            raise VolumeNotFound(f"Storage volume not found: no partition '{vol.name}' on "
                                 f"{device}")
        if part == layout.extended() and any(
                layout.is_logical(p) for p in layout.table.partitions):
            raise InvalidState(f"extended partition '{vol.name}' still holds logical "
                               "partitions", hint="delete them first")
        if part != layout.extended():
            _require_unused("/dev/" + vol.name, what=f"partition '{vol.name}'")
        try:
            self.ctx.runner.run(parted.rm_argv(device, number), timeout=parted.PARTED_TIMEOUT)
        except HostCommandFailed as err:
            raise parted.classify(err, device=device) from None
        if not self.ctx.runner.dry_run:
            udev.settle(self.ctx.runner)


@dataclass(frozen=True, slots=True)
class Plan:
    """The partition vol-create-as will make: parted's type, fs-type and flag, where, and
    the number (and so the kernel name) it will get."""

    number: int
    name: str
    part_type: str  # primary, logical, extended (on gpt: the partition's name, "primary")
    fs_type: str | None
    flag: str | None
    start: int
    end: int  # exclusive

    def argv(self, device: str) -> list[str]:
        return parted.mkpart_argv(device, self.part_type, self.fs_type, self.start,
                                  self.end - 1, number=self.number, flag=self.flag)


def _align_up(value: int, step: int) -> int:
    return -(-value // step) * step


def plan_partition(layout: Layout, disk: str, fmt: str, capacity: int) -> Plan:
    """Where and how to make a partition of ``capacity`` bytes in format ``fmt`` (pure)."""
    if fmt not in parted.PART_FS:
        raise InvalidArgument(f"unknown partition format '{fmt}'")
    parts = layout.table.partitions
    used = {p.number for p in parts}
    ext = layout.extended()
    if fmt == "extended" and not layout.dos:
        raise InvalidArgument("extended partitions exist only on dos partition tables")
    if layout.dos:
        primaries = [n for n in used if n is not None and n <= 4]
        if fmt == "extended":
            if ext is not None:
                raise InvalidArgument("extended partition already exists")
            if len(primaries) >= 4:
                raise InvalidArgument("no primary partition slot left for an extended one")
            kind = "extended"
        elif len(primaries) < 4:
            kind = "primary"
        elif ext is None:
            raise InvalidArgument(
                "no extended partition found and no primary partition available",
                hint="a dos disk holds 4 primary partitions; make one of them extended")
        else:
            kind = "logical"
        first = 5 if kind == "logical" else 1
    else:
        kind, first = "primary", 1
    number = first
    while number in used:
        number += 1
    if layout.dos and kind != "logical" and number > 4:
        raise InvalidArgument("no primary partition slot left")
    sector = layout.table.logical_sector or SECTOR
    size = _align_up(capacity, sector)
    largest = 0
    for region in layout.table.free:
        if (kind == "logical") != layout.is_logical(region):
            continue
        # a logical partition needs a sector before it for its extended boot record
        start = _align_up(region.start + (sector if kind == "logical" else 0), ALIGNMENT)
        largest = max(largest, region.end - start)
        if start + size <= region.end:
            fs_type, flag = parted.PART_FS[fmt]
            part_type = kind if layout.dos else "primary"
            return Plan(number, parted.partition_name(disk, number), part_type, fs_type, flag,
                        start, start + size)
    where = "in the extended partition" if kind == "logical" else f"on {layout.device}"
    raise InvalidArgument(f"no large enough free extent {where} for {size} bytes",
                          hint=f"the largest usable free extent holds {max(largest, 0)} bytes")


def stable_path(target: str | None, node: str) -> str:
    """libvirt's stable path: a link to ``node`` in the pool's target directory, else node."""
    if not target or os.path.normpath(target) == "/dev":
        return node
    return links_to(target).get(os.path.realpath(node), node)


def _require_unused(node: str, *, what: str | None = None) -> None:
    """Refuse a device (or partition) that is mounted or held: an exclusive open fails."""
    try:
        fd = os.open(node, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.EBUSY:
            raise InUse(f"{what or node} is in use (mounted, or held by another device)",
                        hint="unmount or release it first") from None
        return
    os.close(fd)
    if what is None:  # a whole disk: its partitions may be busy while it is not
        disk = os.path.basename(os.path.realpath(node))
        sysdir = f"/sys/class/block/{disk}"
        try:
            children = os.listdir(sysdir)
        except OSError:
            return
        for child in sorted(children):
            if os.path.exists(os.path.join(sysdir, child, "partition")):
                _require_unused("/dev/" + child, what=f"partition '{child}' of {node}")
