"""The Ceph cluster for the rbd tests: brought up once per test session, always torn down.

It comes down as soon as the last test of tests/ceph is done (not only at the end of the
session), so a long run of the other layers does not carry its ~0.5 GB and its mgr's CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.ceph.cluster import Cluster, missing

_UP: list[Cluster] = []


@pytest.fixture(scope="session")
def ceph() -> Iterator[Cluster]:
    gone = missing()
    if gone:
        pytest.skip("no Ceph here: missing " + ", ".join(gone)
                    + " (scripts/setup --test installs them)")
    cluster = Cluster()
    cluster.up()
    _UP.append(cluster)
    old = os.environ.get("CEPH_CONF")
    os.environ["CEPH_CONF"] = str(cluster.conf)  # for qemu-img/qemu-io in the tests
    try:
        yield cluster
    finally:
        if old is None:
            os.environ.pop("CEPH_CONF", None)
        else:
            os.environ["CEPH_CONF"] = old
        cluster.down()
        _UP.clear()


@pytest.hookimpl(trylast=True)  # after the test's own fixtures were torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    here = os.path.dirname(__file__)
    if _UP and (nextitem is None or os.path.dirname(str(nextitem.path)) != here):
        _UP[0].down()  # the session's finalizer finds nothing left to do
        _UP.clear()
