"""The ``iscsi-direct`` backend: the LUNs of one iSCSI target, reached without the kernel.

As libvirt's: no target path, no sessions; build, start and stop do nothing; refresh logs in
(user space, libiscsi), lists the LUNs and reads their sizes. Each disk LUN is a volume
named ``unit:0:0:<lun>`` of type ``network`` whose path and key are the URL QEMU opens
directly, ``iscsi://host:port/<iqn>/<lun>`` (libvirt prints ``ip-<portal>-iscsi-<iqn>-lun-<n>``
there, a by-path name that no program can open; the URL is what a domain's ``<disk
type='network'>`` needs). Pool capacity and allocation are the sum of the LUN sizes,
available is 0 (libvirt's rules). Volumes cannot be created, deleted or resized: the
target's administrator makes LUNs.

``check`` asks the portal for its targets with a short timeout: a pool whose portal is gone
is shown inactive rather than hanging a listing.

vol-upload, vol-download and vol-wipe (zero, libvirt's one algorithm for these volumes) go
through ``qemu-img convert`` with QEMU's own iSCSI initiator (qemu-block-extra), a window
of the LUN given as a raw ``offset``/``size``; a CHAP password reaches qemu-img through a
file only root can read (``--object secret``), never through its command line. A pipe
(``-``) is spooled through a temporary sparse file, since qemu-img needs a seekable file.

May run: ``iscsi-ls``, ``iscsi-readcapacity16`` (libiscsi-bin), read-only; ``qemu-img
convert`` for the transfers and the wipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

from kvmpool import transfer
from kvmpool.backends.base import Context, CreateOptions, Overwrite
from kvmpool.backends.iscsi import where
from kvmpool.copy import Progress
from kvmpool.errors import InvalidArgument, KvmpoolError
from kvmpool.host import libiscsi, qemu_img
from kvmpool.host.libiscsi import Chap
from kvmpool.model import PoolDef, VolTarget, VolType, VolumeDef

CHECK_TIMEOUT = 5.0
SECRET_ID = "chap0"  # noqa: S105 (an object id: qemu-img reads the password from a file)
VOLUME_PREFIX = "unit:0:0:"
# SCSI peripheral types kept as volumes (libiscsi's names): disks only, as libvirt.
DISK_TYPES = frozenset({"DIRECT_ACCESS"})


@dataclasses.dataclass(frozen=True, slots=True)
class Portal:
    host: str
    port: int | None
    iqn: str
    initiator: str


def portal_of(pool: PoolDef) -> Portal:
    """The iscsi pool's source checks (``backends.iscsi.where``), plus the initiator IQN
    that a user-space initiator must name itself with."""
    w = where(pool)
    if not w.initiator:
        raise InvalidArgument(f"pool '{pool.name}' has no initiator IQN",
                              hint="iscsi-direct pools need <initiator><iqn name='...'/>")
    return Portal(w.host, w.port, w.target, w.initiator)


class IscsiDirectBackend:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------ helpers

    def _chap(self, pool: PoolDef) -> Chap | None:
        auth = pool.source.auth
        if auth is None:
            return None
        if auth.type != "chap":
            raise InvalidArgument(f"pool '{pool.name}': iSCSI supports only chap "
                                  f"authentication, not {auth.type}")
        if self.ctx.secret is None:
            raise KvmpoolError(f"pool '{pool.name}' uses CHAP but no secret store is at hand")
        value = self.ctx.secret(auth)
        try:
            password = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"pool '{pool.name}': the CHAP secret is not text",
                                  hint="libiscsi takes a CHAP password as a string") from None
        return Chap(auth.username, password)

    def _volumes(self, pool: PoolDef, *, sizes: bool) -> list[VolumeDef]:
        p = portal_of(pool)
        chap = self._chap(pool)
        runner = self.ctx.runner
        vols = []
        for lun in libiscsi.target_luns(runner, p.host, p.port, p.initiator, p.iqn, chap):
            if lun.type not in DISK_TYPES:
                continue
            url = libiscsi.lun_url(p.host, p.port, p.iqn, lun.number)
            size = (libiscsi.lun_size(runner, p.host, p.port, p.initiator, p.iqn, lun.number,
                                      chap) if sizes else None)
            vols.append(VolumeDef(name=f"{VOLUME_PREFIX}{lun.number}", type=VolType.NETWORK,
                                  key=url, capacity=size, allocation=size,
                                  target=VolTarget(path=url)))
        return vols

    # ------------------------------------------------------------ core

    def check(self, pool: PoolDef) -> bool:
        p = portal_of(pool)
        targets = libiscsi.discover(self.ctx.runner, p.host, p.port, p.initiator,
                                    timeout=CHECK_TIMEOUT)
        return any(t.iqn == p.iqn for t in targets)

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        """Nothing to build: the target's administrator makes LUNs."""

    def start(self, pool: PoolDef) -> None:
        """No session to open: every tool logs in and out (the refresh that follows checks)."""
        portal_of(pool)

    def stop(self, pool: PoolDef) -> None:
        """No session to close."""

    def delete(self, pool: PoolDef) -> None:
        """Not reachable: caps.TABLE gives iscsi-direct no DELETE."""
        raise AssertionError("caps.TABLE forbids deleting an iscsi-direct pool")

    def refresh(self, pool: PoolDef) -> PoolDef:
        total = sum(v.capacity or 0 for v in self._volumes(pool, sizes=True))
        return dataclasses.replace(pool, capacity=total, allocation=total, available=0)

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        return self._volumes(pool, sizes=details)

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        """By name (``unit:0:0:N``) or key (the URL)."""
        for vol in self._volumes(pool, sizes=False):
            if name in (vol.name, vol.key):
                p = portal_of(pool)
                size = libiscsi.lun_size(self.ctx.runner, p.host, p.port, p.initiator, p.iqn,
                                         int(vol.name.removeprefix(VOLUME_PREFIX)),
                                         self._chap(pool))
                return dataclasses.replace(vol, capacity=size, allocation=size)
        return None

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None:
        raise AssertionError("caps.TABLE forbids creating iscsi-direct volumes")

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None:
        raise AssertionError("caps.TABLE forbids deleting iscsi-direct volumes")

    # ------------------------------------------------------------ data (qemu-img)

    @contextlib.contextmanager
    def _lun(self, pool: PoolDef, vol: VolumeDef, *, offset: int | None = None,
             size: int | None = None) -> Iterator[tuple[list[str], str, list[str]]]:
        """(--object arguments, --image-opts string, secrets to redact) for one LUN."""
        p = portal_of(pool)
        chap = self._chap(pool)
        lun = int(vol.name.removeprefix(VOLUME_PREFIX))
        portal = f"{p.host}:{p.port or 3260}"
        if chap is None:
            yield [], qemu_img.iscsi_opts(portal, p.iqn, lun, p.initiator, offset=offset,
                                          size=size), []
            return
        fd, key_file = tempfile.mkstemp(prefix=".kvmpool-chap-")  # mode 0600
        try:
            os.write(fd, chap.password.encode("utf-8"))
            os.close(fd)
            yield (qemu_img.secret_object(SECRET_ID, key_file),
                   qemu_img.iscsi_opts(portal, p.iqn, lun, p.initiator, user=chap.username,
                                       secret_id=SECRET_ID, offset=offset, size=size),
                   [chap.password])
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(key_file)

    def _capacity(self, pool: PoolDef, vol: VolumeDef) -> int:
        if vol.capacity is not None:
            return vol.capacity
        found = self.volume(pool, vol.name)
        if found is None or found.capacity is None:
            raise KvmpoolError(f"LUN '{vol.name}' of pool '{pool.name}' is gone")
        return found.capacity

    def download(self, pool: PoolDef, vol: VolumeDef, dest: str, *, offset: int,
                 length: int | None, sparse: bool, progress: Progress | None) -> int:
        size = self._capacity(pool, vol)
        if offset > size:
            raise InvalidArgument(f"offset {offset} is past the end of the volume ({size})")
        count = size - offset if length is None else min(length, size - offset)
        if dest == "-":
            with _spool() as spool:
                self._read_into(pool, vol, spool, offset, count, sparse=True)
                return transfer.download(spool, "-", progress=progress)
        self._read_into(pool, vol, dest, offset, count, sparse=sparse)
        if progress is not None:
            progress(count)
        return count

    def _read_into(self, pool: PoolDef, vol: VolumeDef, dest: str, offset: int, count: int,
                   *, sparse: bool) -> None:
        with self._lun(pool, vol, offset=offset, size=count) as (objects, opts, secrets):
            argv = [qemu_img.QEMU_IMG, "convert", *objects, "-O", "raw",
                    *([] if sparse else ["-S", "0"]), "--image-opts", opts, dest]
            self.ctx.runner.run(argv, secrets=secrets)

    def upload(self, pool: PoolDef, vol: VolumeDef, source: str, *, offset: int,
               length: int | None, sparse: bool, progress: Progress | None) -> int:
        size = self._capacity(pool, vol)
        with contextlib.ExitStack() as stack:
            if source == "-":
                source = stack.enter_context(_spool())
                with open(source, "wb") as f:
                    shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
            try:
                available = os.stat(source).st_size
            except OSError as err:
                raise InvalidArgument(f"cannot open {source}: {err.strerror}") from None
            if length is not None and available > length:
                raise InvalidArgument(f"{source} holds {available} bytes, "
                                      f"more than --length {length}")
            count = available
            if offset > size or offset + count > size:
                raise InvalidArgument(f"{count} bytes at offset {offset} do not fit in a "
                                      f"volume of {size} bytes",
                                      hint="a LUN's size is set on the target")
            if count == 0:
                return 0
            with self._lun(pool, vol, offset=offset, size=count) as (objects, opts, secrets):
                argv = [qemu_img.QEMU_IMG, "convert", "-n", *objects, "-f", "raw",
                        *([] if sparse else ["-S", "0"]), "--target-image-opts", source, opts]
                self.ctx.runner.run(argv, secrets=secrets)
        if progress is not None:
            progress(count)
        return count

    def wipe_volume(self, pool: PoolDef, vol: VolumeDef, algorithm: str,
                    progress: Progress | None) -> None:
        """Zero the whole LUN (qemu writes zeroes: WRITE SAME where the target has it)."""
        size = self._capacity(pool, vol)
        zeros = f"driver=null-co,size={size},read-zeroes=on"
        with self._lun(pool, vol) as (objects, opts, secrets):
            argv = [qemu_img.QEMU_IMG, "convert", "-n", *objects, "--image-opts", zeros,
                    "--target-image-opts", opts]
            self.ctx.runner.run(argv, secrets=secrets)
        if progress is not None:
            progress(size)


@contextlib.contextmanager
def _spool() -> Iterator[str]:
    """A temporary file for data passing between a pipe and qemu-img (which must seek)."""
    fd, path = tempfile.mkstemp(prefix="kvmpool-spool-", dir=os.environ.get("TMPDIR",
                                                                             "/var/tmp"))
    os.close(fd)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

