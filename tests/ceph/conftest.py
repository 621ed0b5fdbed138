"""The Ceph cluster for the rbd tests: brought up once per test session, always torn down."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.ceph.cluster import Cluster, missing


@pytest.fixture(scope="session")
def ceph() -> Iterator[Cluster]:
    gone = missing()
    if gone:
        pytest.skip("no Ceph here: missing " + ", ".join(gone)
                    + " (scripts/setup --test installs them)")
    cluster = Cluster()
    cluster.up()
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
