"""The ``rbd`` backend: a pool is a Ceph RADOS pool, volumes are its RBD images.

As libvirt's (``storage_backend_rbd.c``): build, start and stop do nothing (refresh, which
follows every start, connects and checks); sizes are the cluster's ``kb``/``kb_avail`` and
the pool's ``num_bytes``; images are raw, network volumes, key ``pool/image``; allocation is
fast-diff's exact usage when the image has a valid fast-diff map (and the pool does not ask
``<refresh><volume allocation='capacity'/>``), else objects x object size. Clones are
copy-on-write from a snapshot of the source (an unchanged ``kvmpool-clone-*`` snapshot is
reused); wipe is zero or trim; ``vol-delete --delete-snapshots`` first removes the snapshots.

Where kvmpool differs: the volume path is what QEMU opens, ``rbd:POOL/IMAGE:id=USER:
mon_host=H\\:P\\;...`` (libvirt prints ``pool/image``), never with the key; a clone reports
its parent as ``<backingStore>`` so deleting a parent with clones is refused up front; clone
v2 clusters get unprotected parent snapshots (v1 clusters: protected, found by trying);
kvmpool's clone snapshots are internal (not listed) and go with their last clone; images
can also be filled from local volumes (raw streamed, other formats through qemu-img) or
from an image of another cluster (streamed between the two connections), copied out into
local pools (``staged_copy``: a sparse scratch file the local backend copies or converts),
and uploaded/downloaded through librbd.

``check`` does not touch the network (libvirt has no check for rbd either): a pool stays
active until an operation fails to reach the cluster; each such failure is a one-line error
within the connect timeout.

Every call goes through one librados connection per cluster and user, shared through
``Context.connections``; each is filed there a second time under where it leads (the
``:id=...:mon_host=...`` part of its paths), which is how a copy from another cluster finds
the connection the manager used to look its source up. May run: ``qemu-img convert`` (a
non-raw local source only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator

from kvmpool.backends.base import Context, CreateOptions, Overwrite, Reflink
from kvmpool.copy import Progress, data_extents
from kvmpool.errors import InUse, InvalidArgument, KvmpoolError
from kvmpool.host.rbd import Cluster, ConnSpec, ImageInfo, key_of
from kvmpool.model import PoolDef, PoolType, Snapshot, VolTarget, VolType, VolumeDef
from kvmpool.names import TEMP_PREFIX

CLONE_PREFIX = "kvmpool-clone-"


def _quiet(_n: int) -> None:
    pass


def source_pool(pool: PoolDef) -> str:
    if not pool.source.name:
        raise InvalidArgument(f"pool '{pool.name}' names no Ceph pool",
                              hint="give one: <source><name>POOL</name>")
    return str(pool.source.name)  # (lxml hands out str subclasses; librados wants str)


def mon_hosts(pool: PoolDef) -> tuple[str, ...]:
    hosts = []
    for h in pool.source.hosts:
        name = f"[{h.name}]" if ":" in h.name and not h.name.startswith("[") else h.name
        hosts.append(f"{name}:{h.port}" if h.port else str(name))
    return tuple(hosts)


def _qemu_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace(";", "\\;")


def image_path(pool: PoolDef, image: str, rados_pool: str | None = None) -> str:
    """What QEMU opens: ``rbd:POOL/IMAGE[:id=USER][:mon_host=H\\:P\\;H2]`` (never the key)."""
    path = f"rbd:{rados_pool or source_pool(pool)}/{image}"
    if pool.source.auth is not None:
        path += f":id={_qemu_escape(pool.source.auth.username)}"
    else:
        path += ":auth_supported=none"
    hosts = mon_hosts(pool)
    if hosts:
        path += ":mon_host=" + "\\;".join(_qemu_escape(h) for h in hosts)
    return path


def split_path(path: str) -> tuple[str, str, str] | None:
    """``rbd:POOL/IMAGE:opts`` -> (pool, image, opts), else None."""
    if not path.startswith("rbd:"):
        return None
    rest = path[4:]
    i = 0
    while i < len(rest):
        if rest[i] == "\\":
            i += 2
            continue
        if rest[i] == ":":
            break
        i += 1
    spec, opts = rest[:i], rest[i:]
    if "/" not in spec:
        return None
    rados_pool, image = spec.split("/", 1)
    return rados_pool, image, opts


class RbdBackend:
    """May run: ``qemu-img convert`` (cloning a non-raw local volume); everything else
    through librados/librbd."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------ connection

    def spec(self, pool: PoolDef) -> ConnSpec:
        auth = pool.source.auth
        user = key = None
        if auth is not None:
            if auth.type != "ceph":
                raise InvalidArgument(f"pool '{pool.name}': rbd pools take <auth type='ceph'>,"
                                      f" not '{auth.type}'")
            if self.ctx.secret is None:
                raise KvmpoolError(f"pool '{pool.name}' uses cephx but no secret store is "
                                   "at hand")
            user = str(auth.username)
            key = key_of(self.ctx.secret(auth))
        return ConnSpec(mon_hosts=mon_hosts(pool), user=user, key=key,
                        options=tuple((str(k), str(v)) for k, v in pool.rbd_config_opts))

    def cluster(self, pool: PoolDef) -> Cluster:
        """The pool's connection; it is also filed under where it leads (``_where``), so that
        an image of this cluster met as the source of a copy into another cluster's pool
        can be read through it."""
        spec = self.spec(pool)
        found = self.ctx.connections.get(spec.cache_key, lambda: Cluster(spec))
        self.ctx.connections.get(("rbd-at", _where(pool)), lambda: _Seen(found))
        return found

    def _cluster_at(self, where: str, source: VolumeDef) -> Cluster:
        """The connection already open to the cluster of ``source`` (the manager looked the
        source up through it), found by the ``:id=...:mon_host=...`` part of its path."""
        def unknown() -> _Seen:
            raise InvalidArgument(f"volume '{source.name}' is on a Ceph cluster this command "
                                  "has no connection to",
                                  hint="name its pool with --inputpool")
        return self.ctx.connections.get(("rbd-at", where), unknown).cluster

    # ------------------------------------------------------------ core

    def check(self, pool: PoolDef) -> bool:
        """No network here (as libvirt): the definition must be usable, that is all."""
        source_pool(pool)
        return True

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        """Nothing to build (caps: rbd has no BUILD): the Ceph admin creates pools."""

    def start(self, pool: PoolDef) -> None:
        """Nothing to start: the refresh that follows connects and checks."""
        source_pool(pool)

    def stop(self, pool: PoolDef) -> None:
        """Nothing to stop."""

    def delete(self, pool: PoolDef) -> None:
        raise AssertionError("caps.TABLE forbids deleting an rbd pool")

    def refresh(self, pool: PoolDef) -> PoolDef:
        capacity, available, allocation = self.cluster(pool).sizes(source_pool(pool))
        return dataclasses.replace(pool, capacity=capacity, available=available,
                                   allocation=allocation)

    def _describe(self, pool: PoolDef, info: ImageInfo) -> VolumeDef:
        backing = None
        if info.parent is not None:
            backing = VolTarget(path=image_path(pool, info.parent[1], info.parent[0]),
                                format="raw")
        return VolumeDef(name=info.name, type=VolType.NETWORK,
                         key=f"{source_pool(pool)}/{info.name}", capacity=info.size,
                         allocation=info.allocation,
                         target=VolTarget(path=image_path(pool, info.name), format="raw"),
                         backing_store=backing)

    def _exact(self, pool: PoolDef) -> bool:
        return pool.refresh_vol_allocation != "capacity"

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        src = source_pool(pool)
        cluster = self.cluster(pool)
        if not details:
            return [VolumeDef(name=n, type=VolType.NETWORK, key=f"{src}/{n}",
                              target=VolTarget(path=image_path(pool, n), format="raw"))
                    for n in cluster.names(src)]
        return [self._describe(pool, i)
                for i in cluster.images(src, exact_allocation=self._exact(pool))]

    def _name_of(self, pool: PoolDef, spec: str) -> str | None:
        """A name, a key (``pool/image``) or a path (``rbd:pool/image...``) -> the name."""
        src = source_pool(pool)
        parts = split_path(spec)
        if parts is not None:
            return parts[1] if parts[0] == src and spec == image_path(pool, parts[1]) else None
        if "/" in spec:
            prefix, _, name = spec.partition("/")
            return name if prefix == src and name else None
        return spec

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        image = self._name_of(pool, name)
        if not image or image.startswith(".") or "@" in image:
            return None
        info = self.cluster(pool).info(source_pool(pool), image,
                                       exact_allocation=self._exact(pool))
        return None if info is None else self._describe(pool, info)

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None:
        if options.prealloc_metadata:
            raise InvalidArgument("metadata preallocation does not apply to rbd images")
        if vol.target.encryption is not None:
            raise InvalidArgument("kvmpool cannot create encrypted rbd images",
                                  hint="encrypt inside the guest, or with QEMU's luks on top")
        if vol.backing_store is not None:
            raise InvalidArgument("an rbd image cannot have a backing store",
                                  hint="make a copy-on-write clone with vol-clone")
        if not vol.capacity:
            raise InvalidArgument("volume capacity required for this storage pool")
        if not self.ctx.runner.change(f"create rbd image {source_pool(pool)}/{vol.name} "
                                      f"of {vol.capacity} bytes"):
            return
        self.cluster(pool).create(source_pool(pool), vol.name, vol.capacity)

    def check_delete(self, pool: PoolDef, vol: VolumeDef, *, delete_snapshots: bool) -> None:
        """Refuse up front what rbd_remove would refuse: clones, watchers, snapshots."""
        src = source_pool(pool)
        cluster = self.cluster(pool)
        snaps = cluster.snapshots(src, vol.name)
        kids = [k for s in snaps for k in s.children]
        if kids:
            raise InUse(f"volume '{vol.name}' has clones: {', '.join(sorted(kids))}",
                        hint="delete the clones first (or flatten them)")
        if cluster.watchers(src, vol.name):
            raise InUse(f"volume '{vol.name}' is in use: a client (a guest?) has it open",
                        hint="stop what uses it first")
        user = [s.name for s in snaps if not s.name.startswith(CLONE_PREFIX)]
        if user and not delete_snapshots:
            raise InUse(f"volume '{vol.name}' has snapshots: {', '.join(user)}",
                        hint="delete them first, or use vol-delete --delete-snapshots")

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None:
        """Refused while a snapshot has clones or a client has the image open; kvmpool's
        own clone snapshots (without clones left) go with it, and a clone's parent snapshot
        made by kvmpool goes with its last clone."""
        src = source_pool(pool)
        cluster = self.cluster(pool)
        snaps = cluster.snapshots(src, vol.name)
        self.check_delete(pool, vol, delete_snapshots=True)
        if not self.ctx.runner.change(f"remove rbd image {src}/{vol.name}"):
            return
        info = cluster.info(src, vol.name, exact_allocation=False)
        for s in snaps:
            if s.name.startswith(CLONE_PREFIX):
                cluster.remove_snapshot(src, vol.name, s.name)
        cluster.remove(src, vol.name)
        if info is not None and info.parent is not None:
            self._drop_clone_snapshot(cluster, *info.parent)

    def _drop_clone_snapshot(self, cluster: Cluster, rpool: str, image: str, snap: str) -> None:
        if not snap.startswith(CLONE_PREFIX):
            return
        with contextlib.suppress(KvmpoolError):
            for s in cluster.snapshots(rpool, image):
                if s.name == snap and not s.children:
                    cluster.remove_snapshot(rpool, image, snap)

    # ------------------------------------------------------------ abilities

    def resize_volume(
        self, pool: PoolDef, vol: VolumeDef, capacity: int, *, shrink: bool, allocate: bool
    ) -> None:
        if allocate:
            raise InvalidArgument("rbd images are thin: --allocate does not apply")
        if self.ctx.runner.change(f"resize rbd image {source_pool(pool)}/{vol.name} "
                                  f"to {capacity} bytes"):
            self.cluster(pool).resize(source_pool(pool), vol.name, capacity)

    def create_volume_from(
        self, pool: PoolDef, vol: VolumeDef, source: VolumeDef, *, reflink: Reflink,
        prealloc_metadata: bool, progress: Progress | None,
    ) -> None:
        """A copy-on-write clone when ``source`` is an image of this cluster (a full copy
        in the cluster with --no-reflink); a local volume's data is copied in."""
        src = source_pool(pool)
        path = source.target.path or ""
        parts = split_path(path)
        if parts is not None:
            rpool, image, where = parts
            capacity = max(vol.capacity or 0, source.capacity or 0)
            if path != image_path(pool, image, rpool):
                self._copy_across(pool, vol, source, where, reflink, capacity,
                                  progress or _quiet)
                return
            if not self.ctx.runner.change(f"clone rbd image {rpool}/{image} to {src}/{vol.name}"):
                return
            if reflink is Reflink.NEVER:
                self._full_copy(pool, rpool, image, vol.name, capacity)
            else:
                self._cow_clone(pool, rpool, image, vol.name, capacity)
            return
        if not path.startswith("/"):
            raise InvalidArgument(f"volume '{source.name}' has no local path to copy from")
        if reflink is Reflink.ALWAYS:
            raise InvalidArgument("a local volume cannot be shared copy-on-write with rbd",
                                  hint="drop --reflink-only")
        self._copy_local(pool, vol, source, path, progress or _quiet)

    def _cow_clone(self, pool: PoolDef, rpool: str, image: str, name: str,
                   capacity: int) -> None:
        cluster = self.cluster(pool)
        src = source_pool(pool)
        snap = next((s.name for s in cluster.snapshots(rpool, image)
                     if s.name.startswith(CLONE_PREFIX)
                     and cluster.unchanged_since(rpool, image, s.name)), None)
        made = snap is None
        if snap is None:
            snap = CLONE_PREFIX + secrets.token_hex(4)
            cluster.create_snapshot(rpool, image, snap)
        try:
            cluster.clone(rpool, image, snap, src, name)
            _grow_or_remove(cluster, src, name, capacity)
        except BaseException:
            if made:
                self._drop_clone_snapshot(cluster, rpool, image, snap)
            raise

    def _copy_across(self, pool: PoolDef, vol: VolumeDef, source: VolumeDef, where: str,
                     reflink: Reflink, capacity: int, progress: Progress) -> None:
        """An image of another cluster (or reached as another user): its data streamed
        from that connection into a new image here, sparse (see ``Cluster.copy_to``)."""
        if reflink is Reflink.ALWAYS:
            raise InvalidArgument("an image of another Ceph cluster cannot be shared "
                                  "copy-on-write", hint="drop --reflink-only")
        parts = split_path(source.target.path or "")
        assert parts is not None
        rpool, image, _ = parts
        origin = self._cluster_at(where, source)
        src = source_pool(pool)
        if not self.ctx.runner.change(f"copy rbd image {rpool}/{image} of another cluster "
                                      f"to {src}/{vol.name}"):
            return
        cluster = self.cluster(pool)
        cluster.create(src, vol.name, capacity)
        try:
            origin.copy_to(rpool, image, cluster, src, vol.name, progress)
        except BaseException:
            with contextlib.suppress(KvmpoolError):
                cluster.remove(src, vol.name)
            raise

    def _full_copy(self, pool: PoolDef, rpool: str, image: str, name: str,
                   capacity: int) -> None:
        cluster = self.cluster(pool)
        src = source_pool(pool)
        cluster.copy(rpool, image, src, name)
        _grow_or_remove(cluster, src, name, capacity)

    def _copy_local(self, pool: PoolDef, vol: VolumeDef, source: VolumeDef, path: str,
                    progress: Progress) -> None:
        fmt = source.target.format if source.type is VolType.FILE else "raw"
        fmt = "raw" if fmt in (None, "iso") else fmt
        if not self.ctx.runner.change(f"copy {path} into rbd image "
                                      f"{source_pool(pool)}/{vol.name}"):
            return
        if fmt == "raw":
            self._stream_file(pool, vol, path, progress)
            return
        # Another format: qemu-img turns it into a sparse raw file first (it could write to
        # the image itself only with the key on its command line or in a file).
        with tempfile.TemporaryDirectory(prefix="kvmpool-rbd-", dir=_scratch_dir(None)) as tmp:
            raw = os.path.join(tmp, "image.raw")
            self.ctx.runner.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", path, raw],
                                timeout=24 * 3600)
            self._stream_file(pool, vol, raw, progress)

    def _stream_file(self, pool: PoolDef, vol: VolumeDef, path: str,
                     progress: Progress) -> None:
        src = source_pool(pool)
        cluster = self.cluster(pool)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            capacity = max(vol.capacity or 0, size)
            cluster.create(src, vol.name, capacity)
            try:
                for off, length in data_extents(fd, 0, size):
                    def read(o: int, n: int, base: int = off) -> bytes | None:
                        return os.pread(fd, n, base + o)

                    cluster.write_from(src, vol.name, read, off, length, progress,
                                       skip_zeros=True)
            except BaseException:
                with contextlib.suppress(KvmpoolError):
                    cluster.remove(src, vol.name)
                raise
        finally:
            os.close(fd)

    def wipe_volume(
        self, pool: PoolDef, vol: VolumeDef, algorithm: str, progress: Progress | None
    ) -> None:
        if self.ctx.runner.change(f"wipe rbd image {source_pool(pool)}/{vol.name} "
                                  f"({algorithm})"):
            self.cluster(pool).zero(source_pool(pool), vol.name, trim=algorithm == "trim",
                                    progress=progress or _quiet)

    # ------------------------------------------------------------ copies out

    @contextlib.contextmanager
    def staged_copy(self, pool: PoolDef, vol: VolumeDef, into: PoolDef,
                    progress: Progress | None) -> Iterator[VolumeDef]:
        """``vol`` as a local raw file, for a pool of another type to copy or convert from
        (the manager asks for it when the destination is not an rbd pool).

        Local backends read files, and qemu-img could read the image itself only with the
        key on its command line or in a file: so the data is streamed out through librbd
        into a sparse scratch file (unallocated extents are not read, zero chunks not
        written), removed when the copy is done. The scratch file lives in the destination
        pool's directory for dir and fs pools (hidden name, same file system: a raw copy
        takes the file itself, written once), else in ``$TMPDIR`` or /var/tmp.
        """
        tmp = os.path.join(_scratch_dir(into), TEMP_PREFIX + secrets.token_hex(8))
        local = VolumeDef(name=vol.name, type=VolType.FILE, capacity=vol.capacity,
                          target=VolTarget(path=tmp, format="raw"))
        if not self.ctx.runner.change(f"copy rbd image {source_pool(pool)}/{vol.name} into "
                                      f"the scratch file {tmp}"):
            yield local
            return
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            self._save(pool, vol, tmp, offset=0, length=None, sparse=True, progress=progress)
            yield local
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # ------------------------------------------------------------ upload / download

    def upload(
        self, pool: PoolDef, vol: VolumeDef, source: str, *, offset: int, length: int | None,
        sparse: bool, progress: Progress | None,
    ) -> int:
        size = vol.capacity or 0
        if offset > size:
            raise InvalidArgument(f"offset {offset} is past the end of the volume ({size})")
        fd = sys.stdin.buffer.fileno() if source == "-" else _open(source)
        try:
            room = size - offset
            regular = os.path.isfile(source) if source != "-" else False
            if regular:
                have = os.lseek(fd, 0, os.SEEK_END)
                if length is not None and have > length:
                    raise InvalidArgument(f"{source} holds {have} bytes, more than "
                                          f"--length {length}")
                count = have if length is None else min(length, have)
                if count > room:
                    raise InvalidArgument(
                        f"{count} bytes at offset {offset} do not fit in a volume of "
                        f"{size} bytes", hint="resize the volume first (kvmpool vol-resize)")

                def read(o: int, n: int) -> bytes | None:
                    return os.pread(fd, n, o)
            else:
                count = room if length is None else min(length, room)

                def read(o: int, n: int) -> bytes | None:
                    buf = bytearray()
                    while len(buf) < n:
                        part = os.read(fd, n - len(buf))
                        if not part:
                            break
                        buf += part
                    return bytes(buf)
            done = self.cluster(pool).write_from(
                source_pool(pool), vol.name, read, offset, count, progress or _quiet,
                skip_zeros=False, discard_zeros=sparse)
            if not regular and os.read(fd, 1):
                raise InvalidArgument(
                    f"the input is longer than the {count} bytes the volume has room for")
            return done
        finally:
            if source != "-":
                os.close(fd)

    def download(
        self, pool: PoolDef, vol: VolumeDef, dest: str, *, offset: int, length: int | None,
        sparse: bool, progress: Progress | None,
    ) -> int:
        return self._save(pool, vol, dest, offset=offset, length=length, sparse=sparse,
                          progress=progress)

    def _save(
        self, pool: PoolDef, vol: VolumeDef, dest: str, *, offset: int, length: int | None,
        sparse: bool, progress: Progress | None,
    ) -> int:
        """Write the image's data to ``dest`` (a file, or ``-``: stdout). No fsync: like cp
        (and vol-download of local volumes), the file is left to the kernel's writeback."""
        size = vol.capacity or 0
        if offset > size:
            raise InvalidArgument(f"offset {offset} is past the end of the volume ({size})")
        count = size - offset if length is None else min(length, size - offset)
        to_pipe = dest == "-"
        fd = sys.stdout.buffer.fileno() if to_pipe else os.open(
            dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        if to_pipe:
            sys.stdout.buffer.flush()
        zeros = bytes(4 << 20)
        pos = [0]

        def write(o: int, data: bytes | None) -> None:
            if data is None:  # a hole up to the next data, or to the end
                return
            if o > pos[0] and (to_pipe or not sparse):
                _fill(fd, pos[0], o, zeros, to_pipe)
            if sparse and not to_pipe and data.count(0) == len(data):
                pos[0] = o + len(data)
                return
            view = memoryview(data)
            at = o
            while view:
                n = os.write(fd, view) if to_pipe else os.pwrite(fd, view, at)
                view, at = view[n:], at + n
            pos[0] = o + len(data)

        try:
            if not to_pipe:
                os.ftruncate(fd, count if sparse else 0)
            self.cluster(pool).read_into(source_pool(pool), vol.name, write, offset, count,
                                         progress or _quiet, holes=True)
            if pos[0] < count and (to_pipe or not sparse):
                _fill(fd, pos[0], count, zeros, to_pipe)
        finally:
            if not to_pipe:
                os.close(fd)
        return count

    # ------------------------------------------------------------ snapshots

    def list_snapshots(self, pool: PoolDef, vol: VolumeDef) -> list[Snapshot]:
        return [Snapshot(name=s.name, created=s.created, origin=vol.name)
                for s in self.cluster(pool).snapshots(source_pool(pool), vol.name)
                if not s.name.startswith(CLONE_PREFIX)]

    def create_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str,
                        size: int | None = None) -> None:
        if size is not None:
            raise InvalidArgument("rbd snapshots take no --size")
        if name.startswith(CLONE_PREFIX):
            raise InvalidArgument(f"snapshot names starting with '{CLONE_PREFIX}' are "
                                  "kvmpool's own (clone parents)")
        if self.ctx.runner.change(f"snapshot rbd image {source_pool(pool)}/{vol.name} "
                                  f"as {name}"):
            self.cluster(pool).create_snapshot(source_pool(pool), vol.name, name)

    def revert_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str) -> None:
        cluster = self.cluster(pool)
        src = source_pool(pool)
        if cluster.watchers(src, vol.name):
            raise InUse(f"volume '{vol.name}' is open by a client: it cannot be reverted "
                        "while in use", hint="stop the guest using it first")
        if self.ctx.runner.change(f"roll rbd image {src}/{vol.name} back to {name}"):
            cluster.rollback(src, vol.name, name)

    def delete_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str) -> None:
        cluster = self.cluster(pool)
        src = source_pool(pool)
        for s in cluster.snapshots(src, vol.name):
            if s.name == name and s.children:
                raise InUse(f"snapshot '{name}' of '{vol.name}' has clones: "
                            f"{', '.join(s.children)}",
                            hint="delete the clones first (or flatten them)")
        if self.ctx.runner.change(f"delete snapshot {name} of rbd image {src}/{vol.name}"):
            cluster.remove_snapshot(src, vol.name, name)


def _where(pool: PoolDef) -> str:
    """The ``:id=...:mon_host=...`` part of the pool's image paths: which cluster, as whom."""
    parts = split_path(image_path(pool, "x"))
    assert parts is not None
    return parts[2]


class _Seen:
    """A connection filed a second time in ``Context.connections`` (closed under its own
    key, not here)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def close(self) -> None:
        pass


def _scratch_dir(into: PoolDef | None) -> str:
    """Where a scratch copy goes: the destination dir/fs pool's directory, else $TMPDIR or
    /var/tmp (not /tmp, often a RAM disk)."""
    target = into.target.path if into is not None else None
    if into is not None and into.type in (PoolType.DIR, PoolType.FS) and target \
            and os.path.isdir(target):
        return target
    return os.environ.get("TMPDIR") or "/var/tmp"


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise InvalidArgument(f"cannot open {path}: {err.strerror}") from None


def _fill(fd: int, start: int, end: int, zeros: bytes, to_pipe: bool) -> None:
    pos = start
    while pos < end:
        n = min(len(zeros), end - pos)
        view = memoryview(zeros)[:n]
        while view:
            w = os.write(fd, view) if to_pipe else os.pwrite(fd, view, pos)
            view = view[w:]
            pos += w


def _grow_or_remove(cluster: Cluster, pool: str, name: str, capacity: int) -> None:
    """A new clone or copy grown to the capacity asked for (never shrunk); on any failure
    it is removed, so no half-made image is left."""
    try:
        info = cluster.info(pool, name, exact_allocation=False)
        if info is not None and capacity > info.size:
            cluster.resize(pool, name, capacity)
    except BaseException:
        with contextlib.suppress(KvmpoolError):
            cluster.remove(pool, name)
        raise
