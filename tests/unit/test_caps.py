"""The capability table and the backends stay in step."""

import pytest

from kvmpool import caps
from kvmpool.backends import backend_for, implemented_types
from kvmpool.backends.base import Cloner, Context, Resizer, Snapshotter, Wiper
from kvmpool.caps import Ability
from kvmpool.errors import Unsupported
from kvmpool.host.run import Runner
from kvmpool.model import PoolDef, PoolTarget, PoolType

PROTOCOLS = {Ability.CLONE: Cloner, Ability.RESIZE: Resizer, Ability.WIPE: Wiper,
             Ability.SNAPSHOT: Snapshotter}


def _pool(t: PoolType) -> PoolDef:
    return PoolDef(type=t, name="p", uuid="00000000-0000-0000-0000-000000000000",
                   target=PoolTarget(path="/nonexistent"))


@pytest.mark.parametrize("pool_type", sorted(implemented_types()))
def test_declared_abilities_are_implemented(pool_type: PoolType) -> None:
    backend = backend_for(_pool(pool_type), Context(Runner()))
    declared = caps.caps(pool_type).abilities
    for ability, protocol in PROTOCOLS.items():
        assert (ability in declared) == isinstance(backend, protocol), (pool_type, ability)


def test_every_type_with_a_backend_is_in_the_table() -> None:
    assert {t for t in PoolType if caps.caps(t).has_backend} == set(implemented_types())


def test_unsupported_is_one_clear_sentence() -> None:
    with pytest.raises(Unsupported, match=r"pool 'p' is of type 'gluster', which this kvmpool"):
        caps.require(_pool(PoolType.GLUSTER), Ability.CREATE_VOLUME)
    with pytest.raises(Unsupported, match=r"pool 'p' \(dir\) cannot snapshot raw volumes"):
        caps.require_volume(_pool(PoolType.DIR), "raw", Ability.SNAPSHOT)
