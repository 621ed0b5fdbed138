"""Volumes that are files in a directory: shared by the dir, fs and netfs backends.

Sizes are computed as libvirt computes them (``virStorageSourceUpdateBackingSizes``):
allocation = st_blocks * 512, physical = st_size, capacity = st_size for raw files and the
header's virtual size otherwise. Formats come from kvmpool's own header probing.

A new volume is written under a hidden temporary name and linked to its real name only
when complete, so a killed kvmpool never leaves a volume that looks whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable

from kvmpool import formats
from kvmpool.backends.base import CreateOptions
from kvmpool.backends.probecache import ProbeCache
from kvmpool.caps import QEMU_IMG_FORMATS
from kvmpool.errors import (
    AlreadyExists,
    HostCommandFailed,
    InvalidArgument,
    KvmpoolError,
    Unsupported,
)
from kvmpool.host import qemu_img
from kvmpool.host.run import Runner
from kvmpool.model import (
    Encryption,
    Permissions,
    SecretRef,
    Timestamps,
    VolTarget,
    VolType,
    VolumeDef,
)
from kvmpool.names import TEMP_PREFIX, check_volume_name

SecretLookup = Callable[[SecretRef, str], bytes]  # (reference, usage type) -> value

DEFAULT_MODE = 0o600
LUKS_ATTEMPTS = 10
_ZEROS = bytes(1 << 20)


# ------------------------------------------------------------------ reading


def statvfs_sizes(path: str) -> tuple[int, int, int]:
    """(capacity, allocation, available) of the file system holding ``path``, as libvirt."""
    st = os.statvfs(path)
    capacity = st.f_frsize * st.f_blocks
    available = st.f_frsize * st.f_bfree
    return capacity, capacity - available, available


def scan(directory: str, *, details: bool, cache: ProbeCache | None = None) -> list[VolumeDef]:
    """Every volume in ``directory`` (not recursive), as libvirt's refresh finds them.

    The extent files of a vmdk belong to their descriptor and are not volumes of their own.
    """
    vols: list[VolumeDef] = []
    members: set[str] = set()
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(TEMP_PREFIX) or (
                    not name.isprintable() and any(ord(c) < 32 for c in name)):
                continue
            if details:  # a listing: sizes, no permissions or timestamps (vol-dumpxml's)
                found = _describe(entry.path, name, cache, full=False, entry=entry)
                if found is not None:
                    vols.append(found[0])
                    members.update(found[1])
                continue
            try:
                is_dir = entry.is_dir()
                is_file = is_dir or entry.is_file()
            except OSError:
                continue
            if is_file:
                kind = VolType.DIR if is_dir else VolType.FILE
                vols.append(VolumeDef(name=name, type=kind, key=entry.path,
                                      target=VolTarget(path=entry.path)))
    if cache is not None:
        cache.save()
    return [v for v in vols if v.key not in members] if members else vols


def describe(path: str, name: str) -> VolumeDef | None:
    """Everything about one file volume, or None for what libvirt skips (FIFOs, dangling links)."""
    found = _describe(path, name, None, full=True)
    return found[0] if found is not None else None


def _describe(
    path: str, name: str, cache: ProbeCache | None, *, full: bool,
    entry: os.DirEntry[str] | None = None,
) -> tuple[VolumeDef, tuple[str, ...]] | None:
    """The volume and the member files that belong to it (a vmdk's extents).

    ``full``: also permissions and timestamps (of the backing file too), which only a
    volume's XML shows; a listing of thousands of volumes skips them. ``entry``, from a
    directory scan, stats relative to the open directory (no path walk).
    """
    try:
        st = entry.stat() if entry is not None else os.stat(path)
    except OSError:
        return None
    perms = stamps = None
    if full:
        perms = Permissions(mode=stat.S_IMODE(st.st_mode) & 0o777, owner=st.st_uid,
                            group=st.st_gid)
        stamps = timestamps(st)
    if stat.S_ISDIR(st.st_mode):
        return VolumeDef(name=name, type=VolType.DIR, key=path, capacity=0, allocation=0,
                         target=VolTarget(path=path, format="dir", permissions=perms,
                                          timestamps=stamps)), ()
    if stat.S_ISBLK(st.st_mode):
        size = _block_size(path)
        return VolumeDef(name=name, type=VolType.FILE, key=path, capacity=size,
                         allocation=size, physical=size,
                         target=VolTarget(path=path, format="raw", permissions=perms,
                                          timestamps=stamps)), ()
    if not stat.S_ISREG(st.st_mode):
        return None
    info = cache.get(name, st) if cache is not None else None
    if info is None:
        try:
            info = formats.probe(path)
        except OSError:
            return None
        if cache is not None:
            cache.put(name, st, info)
    capacity = st.st_size if info.format in ("raw", "iso") else info.capacity
    if info.corrupt is not None:
        capacity = 0  # a damaged header's sizes mean nothing
    backing = None
    if info.backing is not None:
        backing = _backing_target(info.backing, full=full)
    allocation = st.st_blocks * 512
    for member in info.extra_files:  # a vmdk's extents, a qcow2's data file: all its bytes
        with contextlib.suppress(OSError):
            allocation += os.stat(member).st_blocks * 512
    return VolumeDef(
        name=name,
        type=VolType.FILE,
        key=path,
        capacity=capacity,
        allocation=allocation,
        physical=st.st_size,
        target=VolTarget(
            path=path,
            # As libvirt: a LUKS container is a raw volume with <encryption format='luks'>.
            format="raw" if info.format == "luks" else info.format,
            encryption=_encryption(info),
            permissions=perms,
            timestamps=stamps,
            # libvirt names the compat level of v3 images only (v2 is the implied 0.10).
            compat=info.compat if info.compat == "1.1" else None,
            cluster_size=info.cluster_size if info.format == "qcow2" else None,
            lazy_refcounts=info.lazy_refcounts,
            extended_l2=info.extended_l2,
            has_features=info.compat == "1.1",
        ),
        backing_store=backing,
        problem=info.corrupt,
    ), info.extra_files


def _encryption(info: formats.ImageInfo) -> Encryption | None:
    kind = "luks" if info.format == "luks" else info.encryption
    return Encryption(format=kind) if kind else None


def _backing_target(ref: formats.BackingRef, *, full: bool) -> VolTarget:
    path = ref.path or ref.raw
    perms = stamps = None
    if full and ref.path is not None:
        try:
            st = os.stat(ref.path)
        except OSError:
            pass
        else:
            perms = Permissions(mode=stat.S_IMODE(st.st_mode) & 0o777, owner=st.st_uid,
                                group=st.st_gid)
            stamps = timestamps(st)
    return VolTarget(path=path, format=ref.format, permissions=perms, timestamps=stamps)


def timestamps(st: os.stat_result) -> Timestamps:
    def fmt(ns: int) -> str:
        sec, nsec = divmod(ns, 1_000_000_000)
        return f"{sec}.{nsec:09d}" if nsec else str(sec)

    return Timestamps(atime=fmt(st.st_atime_ns), mtime=fmt(st.st_mtime_ns),
                      ctime=fmt(st.st_ctime_ns), btime="0")


def _block_size(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ creating


def create(
    runner: Runner, directory: str, vol: VolumeDef, options: CreateOptions,
    secret_value: SecretLookup | None = None,
) -> str:
    """Create ``vol`` in ``directory``; returns its path. May run: qemu-img create."""
    check_volume_name(vol.name)
    path = os.path.join(directory, vol.name)
    if os.path.lexists(path):
        raise AlreadyExists(f"storage volume '{vol.name}' exists already")
    fmt = vol.target.format or "raw"
    mode = DEFAULT_MODE
    perms = vol.target.permissions
    if perms is not None and perms.mode is not None:
        mode = perms.mode
    if fmt == "dir":
        if runner.change(f"create directory {path} (mode {mode:04o})"):
            try:
                os.mkdir(path, mode)
            except FileExistsError:
                raise AlreadyExists(f"storage volume '{vol.name}' exists already") from None
            chown(path, perms)
        return path
    if vol.target.encryption is not None:
        build = _luks_builder(runner, directory, vol, fmt, options, secret_value)
    elif fmt == "raw":
        build = _raw_builder(vol, options)
    else:
        build = _qemu_img_builder(runner, directory, vol, fmt, options)
    if not runner.change(f"create {fmt} volume {path}"):
        return path
    tmp = os.path.join(directory, TEMP_PREFIX + os.urandom(8).hex())
    try:
        try:
            build(tmp, mode)
        except HostCommandFailed as err:
            err.message = err.message.replace(tmp, path)
            raise
        os.chmod(tmp, mode)
        chown(tmp, perms)
        publish(tmp, path, vol.name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _raw_builder(vol: VolumeDef, options: CreateOptions) -> Callable[[str, int], None]:
    if vol.backing_store is not None:
        raise InvalidArgument("backing storage not supported for raw volumes")
    if options.prealloc_metadata:
        raise InvalidArgument("metadata preallocation is not supported for raw volumes")
    if vol.capacity is None:
        raise InvalidArgument("volume capacity required for this storage pool")
    capacity = vol.capacity
    allocation = capacity if vol.allocation is None else min(vol.allocation, capacity)

    def build(tmp: str, mode: int) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            os.ftruncate(fd, capacity)
            if allocation > 0:
                allocate(fd, allocation)
            os.fsync(fd)
        finally:
            os.close(fd)

    return build


def allocate(fd: int, length: int, start: int = 0) -> None:
    """Allocate ``length`` bytes from ``start``: fallocate, or zeros where it is unsupported.

    EBADF too: where the file system has no fallocate (NFSv3), glibc's posix_fallocate
    emulates it by reading each block first, which a write-only descriptor cannot.
    """
    try:
        os.posix_fallocate(fd, start, length)
        return
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EBADF):
            raise
    offset, end = start, start + length
    while offset < end:
        offset += os.pwrite(fd, _ZEROS[: min(len(_ZEROS), end - offset)], offset)


def qemu_img_options(
    fmt: str, t: VolTarget, capacity: int | None, allocation: int | None,
    prealloc_metadata: bool,
) -> list[str]:
    """The ``-o`` options for a new image of format ``fmt``, in libvirt's order."""
    opts: list[str] = []
    if prealloc_metadata:
        if fmt != "qcow2":
            raise InvalidArgument("metadata preallocation only available with qcow2")
        alloc = capacity if allocation is None else allocation
        below = capacity is not None and alloc is not None and alloc < capacity
        opts.append("preallocation=metadata" if below else "preallocation=falloc")
    if t.nocow:
        opts.append("nocow=on")
    if fmt == "qcow2":
        if t.compat is not None:
            opts.append(f"compat={t.compat}")
        if t.cluster_size is not None:
            opts.append(f"cluster_size={t.cluster_size}")
        if t.lazy_refcounts:
            if t.compat == "0.10":
                raise InvalidArgument("lazy_refcounts not supported with compat level 0.10")
            opts.append("lazy_refcounts=on")
        if t.extended_l2:
            opts.append("extended_l2=on")
    elif t.compat or t.cluster_size or t.lazy_refcounts or t.extended_l2:
        raise InvalidArgument(f"compat, clusterSize and features apply to qcow2, not {fmt}")
    return opts


def _qemu_img_builder(
    runner: Runner, directory: str, vol: VolumeDef, fmt: str, options: CreateOptions
) -> Callable[[str, int], None]:
    if fmt not in QEMU_IMG_FORMATS:
        raise InvalidArgument(f"unknown volume format '{fmt}'")
    backing = backing_fmt = None
    if vol.backing_store is not None and vol.backing_store.path:
        backing = vol.backing_store.path
        if not os.path.isabs(backing):
            backing = os.path.join(directory, backing)
        if not os.access(backing, os.R_OK):
            raise InvalidArgument(f"inaccessible backing store volume {backing}")
        backing_fmt = vol.backing_store.format or _probed_format(backing)
        if options.prealloc_metadata:
            raise InvalidArgument("metadata preallocation conflicts with backing store")
    opts = qemu_img_options(fmt, vol.target, vol.capacity, vol.allocation,
                            options.prealloc_metadata)
    if vol.capacity is None and backing is None:
        raise InvalidArgument("volume capacity required for this storage pool")

    def build(tmp: str, mode: int) -> None:
        argv = qemu_img.create_argv(fmt, tmp, vol.capacity, backing=backing,
                                    backing_format=backing_fmt, options=opts)
        runner.run(argv)

    return build


def luks_options(enc: Encryption, key_id: str, prefix: str) -> list[str]:
    """``-o`` options of a LUKS image (``prefix``: "" for raw LUKS, "encrypt." in qcow2)."""
    opts = [f"{prefix}format=luks"] if prefix else []
    opts.append(f"{prefix}key-secret={key_id}")
    if enc.cipher is not None:
        opts.append(f"{prefix}cipher-alg={enc.cipher.name}-{enc.cipher.size}")
        if enc.cipher.mode:
            opts.append(f"{prefix}cipher-mode={enc.cipher.mode}")
        if enc.cipher.hash:
            opts.append(f"{prefix}hash-alg={enc.cipher.hash}")
    if enc.ivgen is not None:
        opts.append(f"{prefix}ivgen-alg={enc.ivgen.name}")
        if enc.ivgen.hash:
            opts.append(f"{prefix}ivgen-hash-alg={enc.ivgen.hash}")
    return opts


def _luks_builder(
    runner: Runner, directory: str, vol: VolumeDef, fmt: str, options: CreateOptions,
    secret_value: SecretLookup | None,
) -> Callable[[str, int], None]:
    """A LUKS-encrypted raw or qcow2 image; the passphrase reaches qemu-img through a file
    readable by root only (``--object secret,file=``), never on a command line."""
    enc = vol.target.encryption
    assert enc is not None
    if enc.format != "luks":
        raise Unsupported(f"creation of {enc.format} encrypted images is not supported",
                          hint="use <encryption format='luks'>")
    if fmt not in ("raw", "qcow2"):
        raise Unsupported(f"LUKS encryption applies to raw and qcow2 volumes, not {fmt}")
    if enc.secret is None or secret_value is None:
        raise InvalidArgument("an encrypted volume needs <secret type='passphrase' "
                              "uuid='...'/> in its <encryption>",
                              hint="define one: kvmpool secret-define, secret-set-value")
    if vol.capacity is None:
        raise InvalidArgument("volume capacity required for this storage pool")
    passphrase = secret_value(enc.secret, "volume")
    key_id = "sec0"
    if fmt == "raw":
        qfmt, opts = "luks", luks_options(enc, key_id, "")
    else:
        qfmt = "qcow2"
        opts = luks_options(enc, key_id, "encrypt.") + qemu_img_options(
            "qcow2", vol.target, vol.capacity, vol.allocation, options.prealloc_metadata)
    capacity = vol.capacity

    def build(tmp: str, mode: int) -> None:
        fd, key_file = tempfile.mkstemp(prefix=".kvmpool-key-", dir=directory)
        try:
            os.write(fd, passphrase)
            os.close(fd)
            argv = qemu_img.create_argv(qfmt, tmp, capacity, options=opts)
            argv[2:2] = ["--object", f"secret,id={key_id},file={key_file},format=raw"]
            # qemu 7.2 times its PBKDF with the thread's CPU clock, which ticks too coarsely
            # on some hosts: "Unable to get accurate CPU usage". It is a timing fluke, so the
            # command is tried again (a few times) before giving up.
            for attempt in range(LUKS_ATTEMPTS):
                try:
                    runner.run(argv, secrets=[passphrase.decode("utf-8", "replace")])
                    break
                except HostCommandFailed as err:
                    if "accurate CPU usage" not in err.stderr or attempt == LUKS_ATTEMPTS - 1:
                        raise
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(key_file)

    return build


def _probed_format(path: str) -> str:
    """The format of a backing volume the user named (never of one a guest's header names)."""
    try:
        return formats.probe(path).format
    except OSError as err:
        raise InvalidArgument(f"inaccessible backing store volume {path}: {err.strerror}") from None


def chown(path: str, perms: Permissions | None) -> None:
    if perms is None or (perms.owner is None and perms.group is None):
        return
    os.chown(path, -1 if perms.owner is None else perms.owner,
             -1 if perms.group is None else perms.group)


def publish(tmp: str, path: str, name: str) -> None:
    """Give the finished file its real name, never replacing an existing one."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise AlreadyExists(f"storage volume '{name}' exists already") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(path):  # file systems without hard links (vfat)
            raise AlreadyExists(f"storage volume '{name}' exists already") from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


# ------------------------------------------------------------------ deleting


def delete(runner: Runner, vol: VolumeDef) -> None:
    path = vol.target.path
    if path is None:
        raise KvmpoolError(f"volume '{vol.name}' has no path")
    if not runner.change(f"remove {path}"):
        return
    try:
        if vol.type == VolType.DIR:
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise KvmpoolError(f"cannot remove volume '{vol.name}': {err.strerror}") from None
