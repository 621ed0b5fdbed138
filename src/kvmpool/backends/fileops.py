"""What file-pool volumes can do beyond create/delete: clone, resize, wipe, snapshots.

Shared by the dir, fs and netfs backends. The fastest correct path comes first:
a same-format copy of an image without a backing file is a byte copy (reflink where the
file system shares extents, else a sparse-aware in-kernel copy); only a change of format,
or flattening a backing chain, goes through ``qemu-img convert``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil

from kvmpool import copy
from kvmpool.backends import files
from kvmpool.backends.base import Reflink
from kvmpool.backends.files import DEFAULT_MODE, chown, publish, qemu_img_options
from kvmpool.caps import WIPE_ALGORITHMS
from kvmpool.copy import Progress
from kvmpool.errors import (
    AlreadyExists,
    HostCommandFailed,
    InvalidArgument,
    ToolMissing,
    Unsupported,
)
from kvmpool.fileio import fsync_path
from kvmpool.host import qemu_img
from kvmpool.host.run import Runner
from kvmpool.model import Snapshot, VolTarget, VolumeDef
from kvmpool.names import TEMP_PREFIX, check_volume_name


def _fmt(vol: VolumeDef) -> str:
    return vol.target.format or "raw"


def _path(vol: VolumeDef) -> str:
    if vol.target.path is None:
        raise InvalidArgument(f"volume '{vol.name}' has no local path")
    return vol.target.path


# ------------------------------------------------------------------ clone


def clone(
    runner: Runner, directory: str, source: VolumeDef, new: VolumeDef, *,
    reflink: Reflink = Reflink.AUTO, prealloc_metadata: bool = False,
    progress: Progress | None = None,
) -> str:
    """Create ``new`` in ``directory`` with the content of ``source``; returns its path.

    May run: qemu-img convert, qemu-img resize.
    """
    check_volume_name(new.name)
    src_path = _path(source)
    src_fmt = "raw" if source.type.value == "block" or _fmt(source) == "iso" else _fmt(source)
    dst_fmt = new.target.format or src_fmt
    path = os.path.join(directory, new.name)
    if os.path.lexists(path):
        raise AlreadyExists(f"storage volume '{new.name}' exists already")
    src_capacity = source.capacity or 0
    capacity = max(new.capacity or 0, src_capacity)
    byte_copy = (dst_fmt == src_fmt and source.backing_store is None and not prealloc_metadata
                 and source.target.encryption is None and dst_fmt not in ("dir", "vmdk"))
    if dst_fmt == "dir":
        raise Unsupported("directory volumes cannot be cloned")
    how = "copy" if byte_copy else f"qemu-img convert ({src_fmt} -> {dst_fmt})"
    if not runner.change(f"create {dst_fmt} volume {path} from {src_path} by {how}"):
        return path
    mode = DEFAULT_MODE
    perms = new.target.permissions
    if perms is not None and perms.mode is not None:
        mode = perms.mode
    # A scratch file of kvmpool's own in this directory (an rbd image staged for this copy,
    # see backends.base.Stager; no volume may have such a name) is moved into place, not
    # copied: its data is written once.
    take = (byte_copy and os.path.basename(src_path).startswith(TEMP_PREFIX)
            and os.path.dirname(os.path.abspath(src_path)) == os.path.abspath(directory))
    tmp = src_path if take else os.path.join(directory, TEMP_PREFIX + os.urandom(8).hex())
    try:
        if take:
            fsync_path(tmp)  # durable before it gets its name, as a copy is
        elif byte_copy:
            _byte_copy(src_path, tmp, mode, reflink, progress)
        else:
            if reflink is Reflink.ALWAYS:
                raise Unsupported(f"--reflink cannot share extents while converting "
                                  f"{src_fmt} to {dst_fmt}")
            target = VolTarget(format=dst_fmt, compat=new.target.compat,
                               cluster_size=new.target.cluster_size,
                               lazy_refcounts=new.target.lazy_refcounts,
                               extended_l2=new.target.extended_l2, nocow=new.target.nocow)
            opts = qemu_img_options(dst_fmt, target, capacity, new.allocation, prealloc_metadata)
            try:
                runner.run(qemu_img.convert_argv(src_path, src_fmt, tmp, dst_fmt, options=opts))
            except HostCommandFailed as err:
                err.message = err.message.replace(tmp, path)
                raise
        if capacity > src_capacity:
            resize(runner, _as_file(new.name, tmp, dst_fmt), capacity, shrink=False,
                   allocate=False)
        os.chmod(tmp, mode)
        chown(tmp, perms)
        publish(tmp, path, new.name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _as_file(name: str, path: str, fmt: str) -> VolumeDef:
    return VolumeDef(name=name, target=VolTarget(path=path, format=fmt))


def _byte_copy(src: str, dst: str, mode: int, reflink: Reflink, progress: Progress | None) -> None:
    src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            size = os.lseek(src_fd, 0, os.SEEK_END)
            shared = reflink is not Reflink.NEVER and copy.reflink(src_fd, dst_fd)
            if not shared:
                if reflink is Reflink.ALWAYS:
                    raise Unsupported(
                        f"the file system of {os.path.dirname(dst)} cannot share extents "
                        "(reflink)", hint="leave out --reflink to copy instead")
                os.ftruncate(dst_fd, size)
                copy.copy_sparse(src_fd, dst_fd, length=size, progress=progress or _quiet)
            os.fsync(dst_fd)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _quiet(_done: int) -> None:
    pass


# ------------------------------------------------------------------ resize


def resize(runner: Runner, vol: VolumeDef, capacity: int, *, shrink: bool,
           allocate: bool) -> None:
    """Set the volume's capacity. raw: truncate (and allocate); others: qemu-img resize."""
    path = _path(vol)
    fmt = _fmt(vol)
    if fmt == "raw":
        if not runner.change(f"resize {path} to {capacity} bytes"
                             + (" (allocated)" if allocate else "")):
            return
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            if allocate:
                current = os.fstat(fd).st_size
                if capacity > current:
                    files.allocate(fd, capacity - current, current)
            os.ftruncate(fd, capacity)
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    if allocate:
        raise InvalidArgument("preallocate is only supported for raw type volume")
    if fmt not in ("qcow2", "qed", "vmdk", "vpc", "vdi", "vhdx", "qcow"):
        raise Unsupported(f"cannot resize {fmt} volumes")
    runner.run(qemu_img.resize_argv(path, fmt, capacity, shrink=shrink))


# ------------------------------------------------------------------ wipe


def wipe(runner: Runner, vol: VolumeDef, algorithm: str, progress: Progress | None = None) -> None:
    """Destroy the volume's data; the volume stays, empty, with its format and size.

    zero: sparse files are truncated, others overwritten with zeros; trim: holes punched;
    the others: ``scrub -f -p ALG``. Images (qcow2...) are then re-created empty, with
    the same format, size and backing file, so the volume stays usable.
    May run: scrub, qemu-img create.
    """
    if algorithm not in WIPE_ALGORITHMS:
        raise InvalidArgument(f"Unsupported algorithm '{algorithm}'")
    path = _path(vol)
    if not runner.change(f"wipe {path} ({algorithm})"):
        return
    if algorithm in ("zero", "trim"):
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if algorithm == "trim" or st.st_blocks * 512 < st.st_size:
                os.ftruncate(fd, 0)
                os.ftruncate(fd, st.st_size)
            else:
                copy.write_zeros(fd, 0, st.st_size, progress or _quiet)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    else:
        if shutil.which("scrub") is None:
            raise ToolMissing("Cannot find 'scrub' in path", hint="apt-get install scrub")
        runner.run(["scrub", "-f", "-p", algorithm, path], timeout=24 * 3600)
    if _fmt(vol) not in ("raw", "iso"):
        _recreate(runner, vol)


def _recreate(runner: Runner, vol: VolumeDef) -> None:
    path = _path(vol)
    backing = vol.backing_store
    opts = qemu_img_options(_fmt(vol), vol.target, vol.capacity, None, False)
    argv = qemu_img.create_argv(
        _fmt(vol), path, None if backing is not None else vol.capacity,
        backing=backing.path if backing is not None else None,
        backing_format=(backing.format or "raw") if backing is not None else None,
        options=opts)
    if backing is not None and vol.capacity:
        argv.append(str(vol.capacity))
    argv.insert(2, "-u")  # the backing file need not be opened to write the header
    runner.run(argv)


# ------------------------------------------------------------------ snapshots (qcow2)


def snapshots(runner: Runner, vol: VolumeDef) -> list[Snapshot]:
    """Internal snapshots of a qcow2 volume. May run: qemu-img info."""
    out = runner.run(qemu_img.info_argv(_path(vol), "qcow2"), changes=False).stdout
    return parse_snapshots(out, vol.name)


def parse_snapshots(info_json: str, origin: str) -> list[Snapshot]:
    """From ``qemu-img info --output=json``, e.g.::

        {"snapshots": [{"icount": 0, "vm-clock-nsec": 0, "name": "s1", "date-sec": 1795660176,
          "date-nsec": 1234, "vm-clock-sec": 0, "id": "1", "vm-state-size": 0}], ...}
    """
    try:
        data = json.loads(info_json)
    except ValueError:
        raise InvalidArgument("qemu-img info printed something that is not JSON") from None
    result = []
    for snap in data.get("snapshots", []) if isinstance(data, dict) else []:
        when = datetime.datetime.fromtimestamp(int(snap.get("date-sec", 0)), datetime.UTC)
        result.append(Snapshot(name=str(snap["name"]), created=when.isoformat(),
                               size=int(snap.get("vm-state-size", 0)), origin=origin))
    return result


def snapshot(runner: Runner, vol: VolumeDef, action: str, name: str) -> None:
    """create, apply (revert) or delete an internal snapshot. May run: qemu-img snapshot."""
    runner.run(qemu_img.snapshot_argv(action, _path(vol), name))
