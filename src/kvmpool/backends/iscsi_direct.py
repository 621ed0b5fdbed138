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

May run: ``iscsi-ls``, ``iscsi-readcapacity16`` (libiscsi-bin), read-only.
"""

from __future__ import annotations

import dataclasses

from kvmpool.backends.base import Context, CreateOptions, Overwrite
from kvmpool.backends.iscsi import where
from kvmpool.errors import InvalidArgument, KvmpoolError
from kvmpool.host import libiscsi
from kvmpool.host.libiscsi import Chap
from kvmpool.model import PoolDef, VolTarget, VolType, VolumeDef

CHECK_TIMEOUT = 5.0
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
