"""When two pool definitions point at the same storage (libvirt's "source conflict").

A second pool on the same directory, device, export or target would let two definitions
manage one set of volumes; define and pool-create refuse it, naming the first pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmpool.model import Adapter, PoolDef, PoolType

if TYPE_CHECKING:
    from kvmpool.host.scsi import Sysfs


def same_source(a: PoolDef, b: PoolDef) -> bool:
    """libvirt's source-conflict rule, for the types kvmpool manages."""
    if a.type != b.type:
        return False
    if a.type is PoolType.DIR:
        return a.target.path is not None and a.target.path == b.target.path
    if a.type is PoolType.NETFS:
        return bool(a.source.hosts and b.source.hosts) and (
            a.source.hosts[0].name == b.source.hosts[0].name and a.source.dir == b.source.dir)
    if a.type in (PoolType.FS, PoolType.LOGICAL, PoolType.DISK, PoolType.ZFS):
        devs = {d.path for d in a.source.devices}
        return any(d.path in devs for d in b.source.devices)
    if a.type is PoolType.ISCSI:
        # a shared target IQN through the same initiator IQN; the portal's host is not
        # compared (libvirt neither): one target seen from one initiator is one pool
        iqns = {d.path for d in a.source.devices}
        return a.source.initiator_iqn == b.source.initiator_iqn and any(
            d.path in iqns for d in b.source.devices)
    if a.type is PoolType.MPATH:  # the pool is all of the host's multipath maps
        return True
    if a.type is PoolType.SCSI:
        return same_adapter(a.source.adapter, b.source.adapter)
    # iscsi-direct and rbd: no rule (libvirt neither); nothing on the host is shared
    return False


def same_adapter(a: Adapter | None, b: Adapter | None, sysfs: Sysfs | None = None) -> bool:
    """scsi pools: two fc_host adapters with the same wwnn and wwpn; two scsi_host adapters
    with the same parent PCI address and unique_id, or naming the same host (``host3`` and
    ``scsi_host3``; a parentaddr is looked up in sysfs); an fc_host whose ``parent`` or
    existing vHBA is the scsi_host. A host that cannot be resolved conflicts with nothing
    (libvirt neither)."""
    if a is None or b is None:
        return False
    from kvmpool.host import scsi  # sysfs code: only scsi pools need it, at define time

    sysfs = sysfs or scsi.Sysfs()
    if a.type == "fc_host" and b.type == "fc_host":
        return scsi.same_wwn(a.wwnn or "", b.wwnn or "") and scsi.same_wwn(a.wwpn or "",
                                                                           b.wwpn or "")
    if a.type != "fc_host" and b.type != "fc_host":
        if a.parent_address is not None and (a.parent_address, a.unique_id) == (
                b.parent_address, b.unique_id):
            return True
        host = _scsi_host(a, sysfs)
        return host is not None and host == _scsi_host(b, sysfs)
    fc, other = (a, b) if a.type == "fc_host" else (b, a)
    host = _scsi_host(other, sysfs)
    if host is None:
        return False
    if fc.parent is not None and scsi.host_number(fc.parent) == host:
        return True
    return sysfs.fc_host_by_wwn(fc.wwnn or "", fc.wwpn or "") == host


def _scsi_host(adapter: Adapter, sysfs: Sysfs) -> int | None:
    from kvmpool.host import scsi

    if adapter.parent_address is None:
        return scsi.host_number(adapter.name or "")
    p = adapter.parent_address
    return sysfs.host_by_parent(scsi.pci_address(p.domain, p.bus, p.slot, p.function),
                                adapter.unique_id if adapter.unique_id is not None else -1)
