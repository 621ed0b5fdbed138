"""Source conflicts (libvirt's virStoragePoolObjSourceFindDuplicate) for iscsi, iscsi-direct
and mpath pools: the rule itself, and the refusal pool-define-as prints."""

from __future__ import annotations

import pytest

from kvmpool.model import PoolDef, PoolSource, PoolTarget, PoolType, SourceDevice, SourceHost
from kvmpool.sources import same_source
from tests.conftest import Kvmpool

T1 = "iqn.2026-11.org.kvmpool.test:one"
T2 = "iqn.2026-11.org.kvmpool.test:two"
I1 = "iqn.2026-11.org.kvmpool.test:initiator-1"
I2 = "iqn.2026-11.org.kvmpool.test:initiator-2"


def _iscsi(name: str, host: str, target: str, initiator: str | None = I1,
           pool_type: PoolType = PoolType.ISCSI, port: int | None = None) -> PoolDef:
    return PoolDef(type=pool_type, name=name, uuid=f"00000000-0000-0000-0000-00000000000{name[-1]}",
                   source=PoolSource(hosts=(SourceHost(host, port),),
                                     devices=(SourceDevice(target),), initiator_iqn=initiator),
                   target=PoolTarget(path="/dev/disk/by-path"))


@pytest.mark.parametrize(("b", "conflict"), [
    (_iscsi("p2", "192.0.2.1", T1), True),  # the same target, initiator and host
    (_iscsi("p2", "192.0.2.7", T1), True),  # another portal to the same target
    (_iscsi("p2", "192.0.2.1", T1, port=3261), True),
    (_iscsi("p2", "192.0.2.1", T2), False),  # another target
    (_iscsi("p2", "192.0.2.1", T1, I2), False),  # another initiator IQN
    (_iscsi("p2", "192.0.2.1", T1, None), False),  # the host's default initiator
    (_iscsi("p2", "192.0.2.1", T1, pool_type=PoolType.ISCSI_DIRECT), False),  # other type
])
def test_iscsi_conflicts_on_target_and_initiator(b: PoolDef, conflict: bool) -> None:
    a = _iscsi("p1", "192.0.2.1", T1)
    assert same_source(a, b) is conflict
    assert same_source(b, a) is conflict


def test_iscsi_without_initiator_conflicts_with_the_same() -> None:
    assert same_source(_iscsi("p1", "h", T1, None), _iscsi("p2", "h", T1, None))


def test_iscsi_direct_has_no_rule() -> None:
    """As libvirt: two iscsi-direct pools on one target share nothing on the host (no
    session, no node record), so both may be defined."""
    direct = PoolType.ISCSI_DIRECT
    assert not same_source(_iscsi("p1", "h", T1, pool_type=direct),
                           _iscsi("p2", "h", T1, pool_type=direct))


def test_any_two_mpath_pools_conflict() -> None:
    a = PoolDef(type=PoolType.MPATH, name="m1", uuid="00000000-0000-0000-0000-000000000001",
                target=PoolTarget(path="/dev/mapper"))
    b = PoolDef(type=PoolType.MPATH, name="m2", uuid="00000000-0000-0000-0000-000000000002",
                target=PoolTarget(path="/srv/elsewhere"))
    assert same_source(a, b)
    assert not same_source(a, PoolDef(type=PoolType.DIR, name="d", uuid=b.uuid,
                                      target=PoolTarget(path="/dev/mapper")))


def test_define_refuses_a_second_mpath_pool(kvmpool: Kvmpool) -> None:
    kvmpool("pool-define-as", "multi", "mpath", "--target", "/dev/mapper")
    err = kvmpool("pool-define-as", "multi2", "mpath", "--target", "/dev/mapper", ok=False).err
    assert err.splitlines()[0] == (
        "error: Failed to define pool multi2: Storage source conflict with pool: 'multi'"), err
    assert kvmpool("pool-list", "--all", "--name").out.split() == ["multi"]


def test_define_refuses_a_second_iscsi_pool_on_the_target(kvmpool: Kvmpool) -> None:
    def define(name: str, host: str, target: str) -> list[str]:
        return ["pool-define-as", name, "iscsi", "--source-host", host, "--source-dev", target,
                "--source-initiator", I1, "--target", "/dev/disk/by-path"]

    kvmpool(*define("san", "192.0.2.1", T1))
    err = kvmpool(*define("san2", "192.0.2.2", T1), ok=False).err
    assert err.splitlines()[0] == (
        "error: Failed to define pool san2: Storage source conflict with pool: 'san'"), err
    kvmpool(*define("other", "192.0.2.1", T2))
    assert kvmpool("pool-list", "--all", "--name").out.split() == ["other", "san"]
