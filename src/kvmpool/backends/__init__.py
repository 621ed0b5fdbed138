"""One module per pool type, and the registry that picks one for a pool."""

from __future__ import annotations

from collections.abc import Callable

from kvmpool.backends.base import Backend, Context
from kvmpool.backends.dir import DirBackend
from kvmpool.backends.disk import DiskBackend
from kvmpool.backends.fs import FsBackend
from kvmpool.backends.logical import LogicalBackend
from kvmpool.caps import require_backend
from kvmpool.model import PoolDef, PoolType

_REGISTRY: dict[PoolType, Callable[[Context], Backend]] = {
    PoolType.DIR: DirBackend,
    PoolType.FS: FsBackend,
    PoolType.DISK: DiskBackend,
    PoolType.LOGICAL: LogicalBackend,
}


def backend_for(pool: PoolDef, ctx: Context) -> Backend:
    require_backend(pool)
    return _REGISTRY[pool.type](ctx)


def implemented_types() -> frozenset[PoolType]:
    return frozenset(_REGISTRY)
