"""The ``scsi`` backend: the LUNs of one SCSI host adapter (HBA) as volumes.

As libvirt's ``storage_backend_scsi.c``; the sysfs side is ``kvmpool.host.scsi``.

- The adapter names the host: ``<adapter type='scsi_host' name='host3'/>`` (also
  ``scsi_host3``); ``<adapter type='scsi_host'><parentaddr unique_id='N'><address .../>``:
  the host under that PCI device whose ``unique_id`` is N (host numbers change between
  boots, the PCI address and unique_id do not); ``<adapter type='fc_host' wwnn wwpn>``: the
  vHBA with those names, which must exist already (made on a Fibre Channel host with NPIV;
  start says so when it does not).
- build, stop, delete: nothing (libvirt: no-ops for scsi_host; kvmpool never creates a
  vHBA, so it never deletes one either).
- start: the adapter resolves to a host that exists; the manager's first refresh scans it.
- check: the host exists (an fc_host pool without its vHBA is simply inactive).
- refresh: scan the host (``- - -`` into ``scan``), wait for udev, list its LUs; each disk
  or CD/DVD LU becomes volume ``unit:<channel>:<target>:<lun>`` (no host number: it changes
  between boots), type block, path = the stable link in the pool's target directory
  (default ``/dev/disk/by-path``; LUs without one are skipped, as libvirt; target ``/dev``
  takes ``/dev/sdX`` as it is), key = ``scsi_id`` of that path (an fc_host LUN:
  ``<serial>_PORT<target port>``; the path when scsi_id has nothing), sizes from sysfs.
  Pool capacity = allocation = the sum, available 0.
- wipe: ``backends.lun.wipe``: zeros written in-process, scrub's patterns with scrub (no
  trim: caps.TABLE).
  upload/download: the manager's block-device path.

May run: udevadm settle, /lib/udev/scsi_id, scrub; writes /sys/class/scsi_host/hostN/scan.
"""

from __future__ import annotations

import dataclasses
import os

from kvmpool.backends import lun
from kvmpool.backends.base import Context, CreateOptions, Overwrite
from kvmpool.copy import Progress
from kvmpool.errors import InvalidArgument, InvalidState, KvmpoolError, NotFound
from kvmpool.host import scsi, udev
from kvmpool.model import Adapter, PoolDef, VolTarget, VolType, VolumeDef

DEFAULT_TARGET = "/dev/disk/by-path"
SCSI_ID_TIMEOUT = 30.0


def adapter_of(pool: PoolDef) -> Adapter:
    adapter = pool.source.adapter
    if adapter is None or adapter.type is None:
        raise InvalidArgument(f"pool '{pool.name}' has no source adapter",
                              hint="give one: <source><adapter type='scsi_host' name='hostN'/>")
    return adapter


class ScsiBackend:
    dev_root = "/dev"  # where the kernel's device nodes are (tests: a fake tree)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sysfs = scsi.Sysfs()

    # ------------------------------------------------------------ the host

    def host(self, pool: PoolDef) -> int:
        """The number N of the pool's scsi_host ``hostN``, which exists."""
        adapter = adapter_of(pool)
        if adapter.type == "fc_host":
            return self._vhba(pool, adapter)
        if adapter.parent_address is not None:
            a = adapter.parent_address
            address = scsi.pci_address(a.domain, a.bus, a.slot, a.function)
            unique_id = adapter.unique_id if adapter.unique_id is not None else -1
            found = self.sysfs.host_by_parent(address, unique_id)
            if found is None:
                raise NotFound(
                    f"no SCSI host under PCI device {address} has "
                    f"unique_id {unique_id}",
                    hint="each /sys/class/scsi_host/hostN links under its PCI device and "
                         "has a unique_id file: correct the pool's <parentaddr>")
            return found
        name = adapter.name or ""
        number = scsi.host_number(name)
        if number is None:
            raise InvalidArgument(f"invalid adapter name '{name}' for a SCSI pool",
                                  hint="name a SCSI host as hostN (see /sys/class/scsi_host)")
        if not self.sysfs.host_exists(number):
            raise NotFound(f"SCSI host 'host{number}' does not exist",
                           hint="list the hosts with: ls /sys/class/scsi_host")
        return number

    def _vhba(self, pool: PoolDef, adapter: Adapter) -> int:
        wwnn, wwpn = adapter.wwnn or "", adapter.wwpn or ""
        found = self.sysfs.fc_host_by_wwn(wwnn, wwpn)
        if found is not None and self.sysfs.host_exists(found):
            return found
        none_here = "" if self.sysfs.vport_capable() else ", and this host has none"
        raise InvalidState(
            f"no vHBA with wwnn {wwnn} and wwpn {wwpn} exists; creating "
            f"a vHBA needs Fibre Channel hardware with NPIV{none_here}",
            hint="create the vHBA on a Fibre Channel host first (WWPN:WWNN into "
                 "/sys/class/fc_host/hostN/vport_create), or use a scsi_host adapter")

    # ------------------------------------------------------------ core

    def check(self, pool: PoolDef) -> bool:
        try:
            self.host(pool)
        except KvmpoolError:
            return False
        return True

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        """Nothing to build."""

    def start(self, pool: PoolDef) -> None:
        self.host(pool)

    def stop(self, pool: PoolDef) -> None:
        """Nothing to stop (kvmpool made no vHBA to delete)."""

    def delete(self, pool: PoolDef) -> None:
        raise AssertionError("caps.TABLE forbids deleting a scsi pool")

    def refresh(self, pool: PoolDef) -> PoolDef:
        host = self.host(pool)
        if self.ctx.runner.change(f"scan SCSI host host{host} ('{scsi.SCAN_ALL}' into "
                                  f"{self.sysfs.host_dir(host)}/scan)"):
            try:
                self.sysfs.scan(host)
            except OSError as err:
                raise KvmpoolError(f"cannot scan SCSI host host{host}: {err.strerror}",
                                   hint="run kvmpool as root") from None
            udev.settle(self.ctx.runner)
        vols = self._volumes(pool, host)
        total = sum(v.capacity or 0 for v in vols)
        return dataclasses.replace(pool, capacity=total, allocation=total, available=0)

    def _target_dir(self, pool: PoolDef) -> str:
        target = os.path.normpath(pool.target.path or DEFAULT_TARGET)
        root = os.path.normpath(self.dev_root)
        if not target.startswith(root + os.sep) and target != root:
            raise InvalidArgument(
                f"target path '{target}' of pool '{pool.name}' is not a directory of device "
                "nodes or links", hint="use /dev/disk/by-path, /dev/disk/by-id or /dev")
        return target

    def _volumes(self, pool: PoolDef, host: int | None = None) -> list[VolumeDef]:
        host = self.host(pool) if host is None else host
        target = self._target_dir(pool)
        plain = target == os.path.normpath(self.dev_root)
        links = {} if plain else scsi.stable_links(target, self.dev_root)
        npiv = adapter_of(pool).type == "fc_host"
        vols = []
        for lu in self.sysfs.luns(host):
            if lu.type not in (scsi.DISK, scsi.ROM) or lu.disk is None:
                continue
            path = os.path.join(self.dev_root, lu.disk) if plain else links.get(lu.disk)
            if path is None:
                continue  # no stable name: skipped, as libvirt does
            vols.append(VolumeDef(
                name=f"unit:{lu.channel}:{lu.target}:{lu.lun}", type=VolType.BLOCK,
                key=self._key(path, npiv), capacity=lu.size or 0, allocation=lu.size or 0,
                target=VolTarget(path=path)))
        return vols

    def _key(self, path: str, npiv: bool) -> str:
        """scsi_id's identifier of the LUN (libvirt's key), else its path."""
        try:
            result = self.ctx.runner.run(scsi.scsi_id_argv(path, export=npiv), changes=False,
                                         check=False, timeout=SCSI_ID_TIMEOUT)
        except KvmpoolError:  # scsi_id missing or hanging: the path, as libvirt
            return path
        if result.returncode != 0:
            return path
        key = scsi.parse_npiv_key(result.stdout) if npiv else scsi.parse_scsi_id(result.stdout)
        return key or path

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        return self._volumes(pool)

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        """By name (``unit:C:T:L``), key or path, or the link's name in the target directory
        (the manager's lookup by path)."""
        return lun.find(self._volumes(pool), name)

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None:
        raise AssertionError("caps.TABLE forbids creating scsi volumes")

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None:
        raise AssertionError("caps.TABLE forbids deleting scsi volumes")

    # optional abilities (declared in caps.TABLE)

    def wipe_volume(
        self, pool: PoolDef, vol: VolumeDef, algorithm: str, progress: Progress | None
    ) -> None:
        """The whole LUN, as every pool of listed LUNs (``backends.lun``)."""
        lun.wipe(self.ctx, vol, algorithm, progress)
