"""When two pool definitions point at the same storage (libvirt's "source conflict").

A second pool on the same directory, device, export or target would let two definitions
manage one set of volumes; define and pool-create refuse it, naming the first pool.
"""

from __future__ import annotations

from kvmpool.model import PoolDef, PoolType


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
    return False
