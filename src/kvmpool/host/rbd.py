"""Ceph RBD through librados/librbd (Debian's python3-rados and python3-rbd), one connection.

libvirt's rbd driver uses the C libraries, not the ``rbd`` CLI; so does this module, through
the Python bindings, so that bulk work (listing or creating a hundred images) costs one
connection and no process per image. The bindings are imported on first use only: the rest
of kvmpool never needs them, and their absence is a ``ToolMissing`` naming the packages.

A ``Cluster`` is one connection, made the way libvirt makes it (``virStorageBackendRBDOpen
RADOSConn``): no ceph.conf is read when the pool names monitors (``mon_host`` from
``<host>``), the user from ``<auth username>`` with the key set in memory (``key``: never on
a command line, in a file or in a message), ``auth_supported`` none without ``<auth>``,
bounded timeouts (an unreachable monitor fails the connect after ``connect_timeout``
seconds, a stuck OSD op after ``op_timeout``), ``rbd_default_format=2``, then the pool's
``<rbd:config_opts>``, which may override any of these. librados' own logging to stderr is
off (which takes an empty configuration file read, see ``_attempt``): errors reach the user
as kvmpool's one-line messages. A refused key is told within ``PROBE_TIMEOUT`` seconds,
not after the whole connect timeout (``_connect``).

Errors: librbd/librados exceptions become kvmpool errors by class (``_translate``):
not found, exists, busy (watchers: a guest has the image open), has snapshots, permission
denied (the user's caps), timeouts (monitors or OSDs unreachable).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import importlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kvmpool.errors import (
    AlreadyExists,
    InUse,
    InvalidArgument,
    KvmpoolError,
    NotFound,
    ToolMissing,
)

CONNECT_TIMEOUT = 10  # seconds: monitors unreachable -> the connect fails after this
PROBE_TIMEOUT = 2  # seconds: the first connect attempt, long enough to see a refused key
REFUSED = "handle_auth_bad_method"  # librados' log line when a monitor refuses the key (msgr2)
OP_TIMEOUT = 30  # seconds: libvirt's rados_mon_op_timeout / rados_osd_op_timeout
CHUNK = 4 << 20


def bindings() -> tuple[Any, Any]:
    """The ``rados`` and ``rbd`` modules (python3-rados, python3-rbd), imported now."""
    try:
        rados = importlib.import_module("rados")
        rbd = importlib.import_module("rbd")
    except ImportError:
        raise ToolMissing(
            "the Ceph Python bindings (rados, rbd) are not importable",
            hint="apt-get install python3-rados python3-rbd, and run kvmpool with Debian's "
                 "/usr/bin/python3 (scripts/setup links them into its .venv)") from None
    return rados, rbd


class RbdError(KvmpoolError):
    """A librados/librbd call failed for a reason with no better class."""


@dataclass(frozen=True, slots=True)
class ConnSpec:
    """How to reach a cluster. ``key`` is the cephx key (base64) and is never printed."""

    mon_hosts: tuple[str, ...]  # "host" or "host:port" (IPv6 in brackets)
    user: str | None  # None: auth none
    key: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    connect_timeout: int = CONNECT_TIMEOUT

    def __repr__(self) -> str:  # never show the key
        return f"ConnSpec(mon_hosts={self.mon_hosts!r}, user={self.user!r})"

    @property
    def cache_key(self) -> tuple[object, ...]:
        digest = hashlib.sha256((self.key or "").encode()).hexdigest()
        return ("rbd", self.mon_hosts, self.user, digest, self.options, self.connect_timeout)

    def conf(self) -> dict[str, str]:
        conf = {
            "client_mount_timeout": str(self.connect_timeout),
            "rados_mon_op_timeout": str(OP_TIMEOUT),
            "rados_osd_op_timeout": str(OP_TIMEOUT),
            "rbd_default_format": "2",
            "log_to_stderr": "false",
            "err_to_stderr": "false",
            "log_file": "",
        }
        if self.mon_hosts:
            conf["mon_host"] = ",".join(self.mon_hosts)
        if self.user is None:
            conf["auth_supported"] = "none"
        else:
            conf["auth_supported"] = "cephx"
            if self.key is not None:
                conf["key"] = self.key
        conf.update(dict(self.options))
        return conf


def key_of(secret: bytes) -> str:
    """The ``key`` librados takes: base64 of the secret's value (as libvirt does)."""
    return base64.b64encode(secret).decode("ascii")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    name: str
    size: int
    allocation: int
    features: int
    order: int
    parent: tuple[str, str, str] | None  # (pool, image, snapshot) of a clone
    snapshots: int


@dataclass(frozen=True, slots=True)
class SnapInfo:
    name: str
    id: int
    size: int
    created: str | None  # ISO 8601 UTC
    protected: bool
    children: tuple[str, ...]  # "pool/image" of the clones made from it


def _translate(err: Exception, what: str) -> KvmpoolError:
    """A librados/librbd exception as the kvmpool error a user can act on."""
    name = type(err).__name__
    code = getattr(err, "errno", None) or getattr(err, "code", None)
    code = abs(code) if isinstance(code, int) else None
    text = str(err).split("]", 1)[-1].strip() or name
    if name in ("ImageNotFound", "ObjectNotFound") or code == errno.ENOENT:
        return NotFound(f"{what}: not found")
    if name in ("ImageExists", "ObjectExists") or code == errno.EEXIST:
        return AlreadyExists(f"{what}: already exists")
    if name == "ImageHasSnapshots" or code == errno.ENOTEMPTY:
        return InUse(f"{what}: the image has snapshots",
                     hint="delete them first, or use vol-delete --delete-snapshots")
    if name == "ImageBusy" or code == errno.EBUSY:
        return InUse(f"{what}: the image is in use (open by a client, or a snapshot has clones)",
                     hint="stop the guest using it, or flatten/delete its clones")
    if name in ("PermissionError", "PermissionDeniedError") or code in (errno.EACCES,
                                                                        errno.EPERM):
        return RbdError(f"{what}: permission denied by the cluster",
                        hint="check the key in the secret and the user's caps "
                             "(ceph auth get client.USER)")
    if name in ("TimedOut", "Timeout", "InterruptedOrTimeoutError") or code == errno.ETIMEDOUT:
        return RbdError(f"{what}: timed out", hint="are the monitors and OSDs reachable?")
    if name in ("NoSpace", "DiskQuotaExceeded") or code in (errno.ENOSPC, errno.EDQUOT):
        return RbdError(f"{what}: no space left in the cluster")
    if name in ("InvalidArgument", "InvalidArgumentError") or code == errno.EINVAL:
        return InvalidArgument(f"{what}: invalid argument ({text})")
    return RbdError(f"{what}: {text}")


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    rados, rbd = bindings()
    try:
        yield
    except (rados.Error, rbd.Error) as err:
        raise _translate(err, what) from None


class Cluster:
    """One librados connection and what kvmpool asks of it. May be shared (thread-safe)."""

    def __init__(self, spec: ConnSpec) -> None:
        rados, self._rbd_mod = bindings()
        self.spec = spec
        self.conn = _connect(rados, spec)
        self.rbd = self._rbd_mod.RBD()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.shutdown()

    @contextlib.contextmanager
    def ioctx(self, pool: str) -> Iterator[Any]:
        rados, _ = bindings()
        try:
            ioctx = self.conn.open_ioctx(pool)
        except rados.ObjectNotFound:
            raise NotFound(f"Ceph pool '{pool}' does not exist",
                           hint="create it (ceph osd pool create) or fix <source><name>"
                           ) from None
        except rados.Error as err:
            raise _translate(err, f"cannot open Ceph pool '{pool}'") from None
        try:
            yield ioctx
        finally:
            ioctx.close()

    @contextlib.contextmanager
    def image(self, ioctx: Any, name: str, *, read_only: bool = False,
              snapshot: str | None = None) -> Iterator[Any]:
        with _errors(f"cannot open image '{ioctx.get_pool_name()}/{name}'"):
            img = self._rbd_mod.Image(ioctx, name, snapshot=snapshot, read_only=read_only)
        try:
            yield img
        finally:
            img.close()

    # ------------------------------------------------------------ pool facts

    def sizes(self, pool: str) -> tuple[int, int, int]:
        """(capacity, available, allocation) as libvirt computes them: the cluster's kb and
        kb_avail, and the pool's num_bytes."""
        with _errors("cannot read the cluster's usage"):
            stats = self.conn.get_cluster_stats()
        with self.ioctx(pool) as ioctx, _errors(f"cannot read the usage of pool '{pool}'"):
            pstats = ioctx.get_stats()
        return stats["kb"] * 1024, stats["kb_avail"] * 1024, pstats["num_bytes"]

    def names(self, pool: str) -> list[str]:
        with self.ioctx(pool) as ioctx, _errors(f"cannot list the images of pool '{pool}'"):
            return sorted(i["name"] for i in self.rbd.list2(ioctx))

    def images(self, pool: str, *, exact_allocation: bool = True) -> list[ImageInfo]:
        """Every image with its sizes; images that vanish meanwhile are skipped."""
        found = []
        with self.ioctx(pool) as ioctx:
            with _errors(f"cannot list the images of pool '{pool}'"):
                names = [i["name"] for i in self.rbd.list2(ioctx)]
            for name in names:
                try:
                    found.append(self._info(ioctx, name, exact_allocation))
                except NotFound:
                    continue
        return found

    def info(self, pool: str, name: str, *, exact_allocation: bool = True) -> ImageInfo | None:
        with self.ioctx(pool) as ioctx:
            try:
                return self._info(ioctx, name, exact_allocation)
            except NotFound:
                return None

    def _info(self, ioctx: Any, name: str, exact: bool) -> ImageInfo:
        rbd = self._rbd_mod
        with self.image(ioctx, name, read_only=True) as img, \
                _errors(f"cannot read image '{name}'"):
            stat = img.stat()
            size = stat["size"]
            features = img.features()
            alloc = stat["obj_size"] * stat["num_objs"]
            if exact and features & rbd.RBD_FEATURE_FAST_DIFF \
                    and not img.flags() & rbd.RBD_FLAG_FAST_DIFF_INVALID:
                alloc = _allocated(img, size)
            parent = None
            with contextlib.suppress(rbd.ImageNotFound):
                spec = img.get_parent_image_spec()
                parent = (spec["pool_name"], spec["image_name"], spec["snap_name"])
            snaps = sum(1 for _ in img.list_snaps())
        return ImageInfo(name=name, size=size, allocation=alloc, features=features,
                         order=stat["order"], parent=parent, snapshots=snaps)

    # ------------------------------------------------------------ images

    def create(self, pool: str, name: str, size: int, *, features: int | None = None) -> None:
        """A new image; features None: the cluster's (or the pool options') default."""
        with self.ioctx(pool) as ioctx, _errors(f"cannot create image '{pool}/{name}'"):
            self.rbd.create(ioctx, name, size, features=features)

    def remove(self, pool: str, name: str) -> None:
        with self.ioctx(pool) as ioctx, _errors(f"cannot remove image '{pool}/{name}'"):
            self.rbd.remove(ioctx, name)

    def resize(self, pool: str, name: str, size: int) -> None:
        with self.ioctx(pool) as ioctx, self.image(ioctx, name) as img, \
                _errors(f"cannot resize image '{pool}/{name}'"):
            img.resize(size)

    def watchers(self, pool: str, name: str) -> list[str]:
        with self.ioctx(pool) as ioctx, self.image(ioctx, name, read_only=True) as img, \
                _errors(f"cannot list the watchers of '{pool}/{name}'"):
            return [str(w.get("addr", "?")) for w in img.watchers_list()]

    # ------------------------------------------------------------ snapshots

    def snapshots(self, pool: str, name: str) -> list[SnapInfo]:
        """User snapshots (the trash namespace of clone v2 is left out)."""
        rbd = self._rbd_mod
        found = []
        with self.ioctx(pool) as ioctx, self.image(ioctx, name, read_only=True) as img, \
                _errors(f"cannot list the snapshots of '{pool}/{name}'"):
            for snap in img.list_snaps():
                if snap.get("namespace", rbd.RBD_SNAP_NAMESPACE_TYPE_USER) \
                        != rbd.RBD_SNAP_NAMESPACE_TYPE_USER:
                    continue
                sname = snap["name"]
                created = None
                with contextlib.suppress(rbd.Error):
                    ts = img.get_snap_timestamp(snap["id"])
                    created = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
                img.set_snap(sname)
                try:
                    kids = tuple(f"{c['pool']}/{c['image']}" for c in img.list_children2())
                finally:
                    img.set_snap(None)
                found.append(SnapInfo(name=sname, id=snap["id"], size=snap["size"],
                                      created=created,
                                      protected=bool(img.is_protected_snap(sname)),
                                      children=kids))
        return found

    def create_snapshot(self, pool: str, name: str, snap: str) -> None:
        with self.ioctx(pool) as ioctx, self.image(ioctx, name) as img, \
                _errors(f"cannot snapshot '{pool}/{name}'"):
            img.create_snap(snap)

    def protect(self, pool: str, name: str, snap: str) -> None:
        with self.ioctx(pool) as ioctx, self.image(ioctx, name) as img, \
                _errors(f"cannot protect snapshot '{pool}/{name}@{snap}'"):
            if not img.is_protected_snap(snap):
                img.protect_snap(snap)

    def remove_snapshot(self, pool: str, name: str, snap: str) -> None:
        """Unprotect (if protected) and remove; refused while clones depend on it."""
        with self.ioctx(pool) as ioctx, self.image(ioctx, name) as img, \
                _errors(f"cannot delete snapshot '{pool}/{name}@{snap}'"):
            if img.is_protected_snap(snap):
                img.unprotect_snap(snap)
            img.remove_snap(snap)

    def rollback(self, pool: str, name: str, snap: str) -> None:
        with self.ioctx(pool) as ioctx, self.image(ioctx, name) as img, \
                _errors(f"cannot revert '{pool}/{name}' to '{snap}'"):
            img.rollback_to_snap(snap)

    def unchanged_since(self, pool: str, name: str, snap: str) -> bool:
        """Has the image no change since ``snap`` (libvirt's snapshot reuse for clones)?"""
        with self.ioctx(pool) as ioctx, self.image(ioctx, name, read_only=True) as img, \
                _errors(f"cannot compare '{pool}/{name}' with '{snap}'"):
            changed = []

            def seen(_off: int, _len: int, _exists: bool) -> int:
                changed.append(1)
                return -errno.ECANCELED  # one change is enough

            with contextlib.suppress(self._rbd_mod.OperationCanceled):
                img.diff_iterate(0, img.size(), snap, seen, whole_object=True)
            return not changed and img.size() == _snap_size(img, snap)

    def clone(self, src_pool: str, src: str, snap: str, dst_pool: str, dst: str) -> None:
        """A copy-on-write clone, with the parent's features, order and striping.

        Clone v2 (clusters requiring mimic clients or later) needs no protection; a clone v1
        cluster refuses an unprotected parent (EINVAL): then the snapshot is protected and
        the clone retried.
        """
        rbd = self._rbd_mod
        with self.ioctx(src_pool) as pctx, self.ioctx(dst_pool) as cctx:
            with self.image(pctx, src, read_only=True) as img, \
                    _errors(f"cannot read image '{src_pool}/{src}'"):
                features = img.features()
                order = img.stat()["order"]
                unit, count = img.stripe_unit(), img.stripe_count()

            def attempt() -> None:
                self.rbd.clone(pctx, src, snap, cctx, dst, features=features, order=order,
                               stripe_unit=unit, stripe_count=count)

            with _errors(f"cannot clone '{src_pool}/{src}@{snap}' to '{dst_pool}/{dst}'"):
                try:
                    attempt()
                except rbd.InvalidArgument:
                    with self.image(pctx, src) as img:
                        if img.is_protected_snap(snap):
                            raise
                        img.protect_snap(snap)
                    attempt()

    def flatten(self, pool: str, name: str) -> None:
        with self.ioctx(pool) as ioctx, self.image(ioctx, name) as img, \
                _errors(f"cannot flatten '{pool}/{name}'"):
            img.flatten()

    # ------------------------------------------------------------ data

    def write_from(self, pool: str, name: str, read: Callable[[int, int], bytes | None],
                   start: int, length: int, progress: Callable[[int], None], *,
                   skip_zeros: bool, discard_zeros: bool = False) -> int:
        """Write ``length`` bytes at ``start``; ``read(offset, n)`` gives the data
        (None: a hole, nothing to write). Zero chunks are skipped where the image already
        reads zeros, or discarded (``discard_zeros``). Returns the bytes taken."""
        done = 0
        with self.ioctx(pool) as ioctx, self.image(ioctx, name) as img, \
                _errors(f"cannot write to '{pool}/{name}'"):
            while done < length:
                n = min(CHUNK, length - done)
                data = read(done, n)
                if data is not None and not data:
                    break
                if data is None or (data.count(0) == len(data) and (skip_zeros or
                                                                    discard_zeros)):
                    size = n if data is None else len(data)
                    if discard_zeros:
                        img.discard(start + done, size)
                else:
                    size = len(data)
                    img.write(data, start + done)
                done += size
                progress(size)
            img.flush()
        return done

    def read_into(self, pool: str, name: str, write: Callable[[int, bytes | None], None],
                  start: int, length: int, progress: Callable[[int], None], *,
                  holes: bool) -> int:
        """Read ``length`` bytes from ``start`` and hand them to ``write(offset, data)``;
        with ``holes``, unallocated stretches are handed over as None (not read)."""
        done = 0
        with self.ioctx(pool) as ioctx, self.image(ioctx, name, read_only=True) as img, \
                _errors(f"cannot read '{pool}/{name}'"):
            extents = _extents(img, start, length) if holes else [(start, length)]
            pos = start
            for off, n in extents:
                if off > pos:
                    write(pos - start, None)  # a hole up to off
                    progress(off - pos)
                    done += off - pos
                end = off + n
                while off < end:
                    m = min(CHUNK, end - off)
                    write(off - start, img.read(off, m))
                    progress(m)
                    done += m
                    off += m
                pos = end
            if pos < start + length:
                write(pos - start, None)
                progress(start + length - pos)
                done += start + length - pos
        return done

    def zero(self, pool: str, name: str, *, trim: bool,
             progress: Callable[[int], None]) -> None:
        """Wipe: write zeros (``trim``: discard) in chunks of object size x stripe count."""
        with self.ioctx(pool) as ioctx, self.image(ioctx, name) as img, \
                _errors(f"cannot wipe '{pool}/{name}'"):
            size = img.size()
            step = max(img.stat()["obj_size"] * max(img.stripe_count(), 1), CHUNK)
            zeros = bytes(step)
            off = 0
            while off < size:
                n = min(step, size - off)
                if trim:
                    img.discard(off, n)
                else:
                    img.write(zeros[:n], off)
                off += n
                progress(n)
            img.flush()

    def copy_to(self, pool: str, name: str, dest: Cluster, dest_pool: str, dest_name: str,
                progress: Callable[[int], None]) -> None:
        """Stream an image's data into an existing image of ``dest`` (another connection,
        another cluster): only allocated extents are read (diff_iterate, a clone's parent
        included), and chunks of zeros are not written (the new image reads zeros there)."""
        with self.ioctx(pool) as sctx, dest.ioctx(dest_pool) as dctx, \
                self.image(sctx, name, read_only=True) as src, \
                dest.image(dctx, dest_name) as dst, \
                _errors(f"cannot copy '{pool}/{name}' to '{dest_pool}/{dest_name}'"):
            size = src.size()
            pos = 0
            for off, length in _extents(src, 0, size):
                progress(off - pos)
                end = off + length
                while off < end:
                    n = min(CHUNK, end - off)
                    data = src.read(off, n)
                    if data.count(0) != len(data):
                        dst.write(data, off)
                    progress(n)
                    off += n
                pos = end
            progress(size - pos)
            dst.flush()

    def copy(self, src_pool: str, src: str, dst_pool: str, dst: str) -> None:
        """A full copy in the cluster (librbd copies the data object by object)."""
        with self.ioctx(src_pool) as sctx, self.ioctx(dst_pool) as dctx, \
                self.image(sctx, src, read_only=True) as img, \
                _errors(f"cannot copy '{src_pool}/{src}' to '{dst_pool}/{dst}'"):
            img.copy(dctx, dst)


def _connect(rados: Any, spec: ConnSpec) -> Any:
    """A connected ``rados.Rados`` for ``spec``, or one kvmpool error line.

    A monitor that refuses the key over msgr2 makes librados retry until the mount timeout
    (msgr1 fails at once with EACCES). So the first attempt is short (``PROBE_TIMEOUT``) and
    reads librados' own log through a pipe: the monitor's refusal shows there
    (``handle_auth_bad_method``), and kvmpool stops with "permission denied" at once. Without
    a refusal (a slow or unreachable monitor) a second attempt gets what is left of
    ``connect_timeout``: the whole connect stays bounded by it.
    """
    hosts = ", ".join(spec.mon_hosts) or "the monitors of the default ceph.conf"
    user = f"client.{spec.user or 'admin'}"
    denied = RbdError(
        f"the Ceph monitors at {hosts} refused {user}: permission denied (wrong key or "
        "unknown user?)",
        hint=f"check the key in the pool's secret and that the user exists (ceph auth get "
             f"{user})")
    _check_names(spec.mon_hosts)
    conf = spec.conf()
    started = time.monotonic()
    total = int(float(conf["client_mount_timeout"]))
    first = min(PROBE_TIMEOUT, total)
    err: Exception | None = None
    for attempt in range(2):
        left = total - (time.monotonic() - started)
        if attempt and left < 1:
            break
        timeout = first if attempt == 0 else round(left)
        conn, err, refused = _attempt(rados, spec, dict(conf, client_mount_timeout=str(timeout)),
                                      tap=attempt == 0)
        if conn is not None:
            return conn
        assert err is not None
        if refused or isinstance(err, rados.PermissionDeniedError):
            raise denied from None
        if not isinstance(err, rados.TimedOut | rados.InterruptedOrTimeoutError):
            raise _translate(err, f"cannot connect to Ceph at {hosts} as {user}") from None
    took = time.monotonic() - started
    if any(_answers(h) for h in spec.mon_hosts):
        raise RbdError(f"the Ceph monitors at {hosts} did not let {user} in within {took:.0f} s",
                       hint="check that the cluster has a quorum (ceph -s), and the key in "
                            f"the pool's secret (ceph auth get {user}); a port other than "
                            "3300/6789 is taken as msgr2") from None
    raise RbdError(f"cannot reach the Ceph monitors at {hosts} within {took:.0f} s",
                   hint="check <source><host> and that the cluster is up") from None


def _attempt(rados: Any, spec: ConnSpec, conf: dict[str, str], *,
             tap: bool) -> tuple[Any, Exception | None, bool]:
    """One connect: (connection or None, the error, whether the monitors refused the key)."""
    # The log options take effect only once a configuration file was read (with
    # NO_CONF_FILE librados still logs errors to stderr): read an empty one when the pool
    # names its monitors, the default ceph.conf (CEPH_CONF) when it does not.
    conffile = os.devnull if spec.mon_hosts else ""
    log = _LogTap() if tap else None
    if log is not None:
        conf = dict(conf, log_file=log.path)
    try:
        try:
            conn = rados.Rados(rados_id=spec.user or "admin", conffile=conffile, conf=conf)
        except rados.Error as err:
            raise _translate(err, "cannot set up the Ceph client") from None
        try:
            conn.connect()
        except rados.Error as err:
            with contextlib.suppress(Exception):
                conn.shutdown()  # librados closes its end of the pipe
            return None, err, log is not None and REFUSED in log.text()
        if log is not None:
            with contextlib.suppress(rados.Error):
                conn.conf_set("log_file", spec.conf()["log_file"])  # leaves the pipe
        return conn, None, False
    finally:
        if log is not None:
            log.close()


class _LogTap:
    """librados' log, read through a pipe while a connect runs. A thread keeps reading, so
    a talkative log (debug options in the pool's config) never blocks librados."""

    KEEP = 1 << 20  # bytes of log kept

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self.path = f"/proc/self/fd/{self._write}"
        self._chunks: list[bytes] = []
        self._kept = 0
        self._thread = threading.Thread(target=self._pump, name="rbd-log", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self._read, 65536)
            except OSError:
                return
            if not data:
                return
            if self._kept < self.KEEP:
                self._chunks.append(data)
                self._kept += len(data)

    def _finish(self) -> None:
        """Close our write end and wait for the end of the log (librados closed its own)."""
        if self._write >= 0:
            os.close(self._write)
            self._write = -1
        self._thread.join(1.0)

    def text(self) -> str:
        self._finish()
        return b"".join(self._chunks).decode(errors="replace")

    def close(self) -> None:
        self._finish()
        if not self._thread.is_alive() and self._read >= 0:  # else it still reads: leave it
            os.close(self._read)
            self._read = -1


def _address(host: str) -> tuple[str, tuple[int, ...]]:
    """``host[:port]`` (IPv6 in brackets) -> (name, ports to try)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, (int(rest[1:]),) if rest.startswith(":") else (3300, 6789)
    if host.count(":") == 1:
        name, _, text = host.partition(":")
        return name, (int(text),)
    return host, (3300, 6789)


def _check_names(hosts: tuple[str, ...]) -> None:
    """librados refuses the whole list when one monitor name does not resolve, printing its
    own lines to stderr: find that first and say it in one line."""
    for host in hosts:
        name = _address(host)[0]
        try:
            socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as err:
            reason = err.strerror if isinstance(err, socket.gaierror) else "not a host name"
            raise InvalidArgument(f"cannot resolve the Ceph monitor host '{name}': {reason}",
                                  hint="check <source><host name=...> of the pool") from None


def _answers(host: str, timeout: float = 1.0) -> bool:
    """Does something accept TCP connections at ``host[:port]`` (a monitor's address)?"""
    name, ports = _address(host)
    for each in ports:
        try:
            with socket.create_connection((name, each), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def _snap_size(img: Any, snap: str) -> int:
    for s in img.list_snaps():
        if s["name"] == snap:
            return int(s["size"])
    return -1


def _allocated(img: Any, size: int) -> int:
    """Bytes in objects that exist (fast-diff, whole objects, parent excluded): libvirt's."""
    total = [0]

    def add(_off: int, length: int, exists: bool) -> int:
        if exists:
            total[0] += length
        return 0

    img.diff_iterate(0, size, None, add, include_parent=False, whole_object=True)
    return total[0]


def _extents(img: Any, start: int, length: int) -> list[tuple[int, int]]:
    """Allocated (offset, length) stretches of [start, start+length), parent included."""
    found: list[tuple[int, int]] = []

    def add(off: int, n: int, exists: bool) -> int:
        if exists:
            if found and found[-1][0] + found[-1][1] == off:
                found[-1] = (found[-1][0], found[-1][1] + n)
            else:
                found.append((off, n))
        return 0

    img.diff_iterate(start, length, None, add, include_parent=True, whole_object=False)
    end = start + length
    return [(max(o, start), min(o + n, end) - max(o, start)) for o, n in found
            if o < end and o + n > start]
