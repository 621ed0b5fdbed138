"""One module per pool type, and the registry that picks one for a pool."""

from __future__ import annotations

from kvmpool.backends.base import Backend, Context
from kvmpool.backends.dir import DirBackend
from kvmpool.caps import require_backend
from kvmpool.model import PoolDef, PoolType

_REGISTRY: dict[PoolType, type[DirBackend]] = {
    PoolType.DIR: DirBackend,
}


def backend_for(pool: PoolDef, ctx: Context) -> Backend:
    require_backend(pool)
    return _REGISTRY[pool.type](ctx)


def implemented_types() -> frozenset[PoolType]:
    return frozenset(_REGISTRY)
