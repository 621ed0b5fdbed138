"""One module per pool type, and the registry that picks one for a pool.

Backends are imported when a pool of their type is first used, so a command that touches
only dir pools never loads the LVM or partition code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from kvmpool.backends.base import Backend, Context
from kvmpool.caps import require_backend
from kvmpool.model import PoolDef, PoolType

_REGISTRY: dict[PoolType, str] = {
    PoolType.DIR: "kvmpool.backends.dir:DirBackend",
    PoolType.FS: "kvmpool.backends.fs:FsBackend",
    PoolType.NETFS: "kvmpool.backends.netfs:NetfsBackend",
    PoolType.DISK: "kvmpool.backends.disk:DiskBackend",
    PoolType.LOGICAL: "kvmpool.backends.logical:LogicalBackend",
    PoolType.ISCSI_DIRECT: "kvmpool.backends.iscsi_direct:IscsiDirectBackend",
    PoolType.ISCSI: "kvmpool.backends.iscsi:IscsiBackend",  # untested without the VM tier
    PoolType.RBD: "kvmpool.backends.rbd:RbdBackend",
    PoolType.SCSI: "kvmpool.backends.scsi:ScsiBackend",
    PoolType.MPATH: "kvmpool.backends.mpath:MpathBackend",
}


def _factory(pool_type: PoolType) -> Callable[[Context], Backend]:
    module, name = _REGISTRY[pool_type].split(":")
    return cast(Callable[[Context], Backend], getattr(importlib.import_module(module), name))


def backend_for(pool: PoolDef, ctx: Context) -> Backend:
    require_backend(pool)
    return _factory(pool.type)(ctx)


def implemented_types() -> frozenset[PoolType]:
    return frozenset(_REGISTRY)
