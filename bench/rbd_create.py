#!/usr/bin/env python3
"""Creating 100 rbd images: kvmpool against the librbd Python bindings used directly.

    .venv/bin/python bench/rbd_create.py            # brings up its own Ceph (tests/ceph)
    .venv/bin/python bench/rbd_create.py --count 50 --rounds 2

Three ways, each in a fresh RADOS pool of its own (made and deleted around the timed part,
because removing images is slow in Pacific), as the restricted user client.kvmpool:

- ``librbd``: one connection, ``RBD().create(ioctx, name, 1 GiB)`` N times;
- ``backend``: kvmpool's ``RbdBackend.create_volume`` N times (one connection, shared
  through ``Context.connections``): the issue's target is <= 1.5x librbd;
- ``manager``: ``Manager.create_volume`` N times: what one ``vol-create-as`` does after
  start-up: the pool lock, the "exists already" check and the new volume read back.

Median of --rounds, rounds interleaved. Needs the packages of scripts/setup --test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from kvmpool.backends.base import Context, CreateOptions  # noqa: E402
from kvmpool.backends.rbd import RbdBackend  # noqa: E402
from kvmpool.host.run import Runner  # noqa: E402
from kvmpool.manager import Manager  # noqa: E402
from kvmpool.model import Auth, PoolDef, PoolSource, PoolType, SecretRef, SourceHost, VolumeDef  # noqa: E402
from kvmpool.paths import default_paths  # noqa: E402
from tests.ceph.cluster import Cluster  # noqa: E402

GiB = 1 << 30


def pool_def(cluster: Cluster, rpool: str, secret: str) -> PoolDef:
    return PoolDef(type=PoolType.RBD, name=f"b-{rpool}", uuid=str(uuid.uuid4()),
                   source=PoolSource(hosts=(SourceHost("127.0.0.1", cluster.v2),), name=rpool,
                                     auth=Auth("ceph", "kvmpool", SecretRef(uuid=secret))))


def run_librbd(cluster: Cluster, rpool: str, n: int) -> float:
    import rados
    import rbd

    conn = rados.Rados(rados_id="kvmpool", conffile=rados.Rados.NO_CONF_FILE,
                       conf={"mon_host": f"127.0.0.1:{cluster.v2}", "key": cluster.user_key})
    conn.connect()
    try:
        with conn.open_ioctx(rpool) as ioctx:
            rbd.RBD().list(ioctx)  # the pool's PGs are active
            t0 = time.perf_counter()
            for i in range(n):
                rbd.RBD().create(ioctx, f"img{i}", GiB)
            return time.perf_counter() - t0
    finally:
        conn.shutdown()


def run_backend(cluster: Cluster, rpool: str, n: int, key: bytes) -> float:
    ctx = Context(Runner(), secret=lambda _auth: key)
    pool = pool_def(cluster, rpool, str(uuid.uuid4()))
    RbdBackend(ctx).cluster(pool).names(rpool)  # connect, PGs active
    t0 = time.perf_counter()
    for i in range(n):
        # a new backend object each time, as the manager makes them: the connection is shared
        RbdBackend(ctx).create_volume(pool, VolumeDef(name=f"img{i}", capacity=GiB),
                                      CreateOptions())
    took = time.perf_counter() - t0
    ctx.connections.close()
    return took


def run_manager(cluster: Cluster, rpool: str, n: int, key: bytes, root: Path) -> float:
    from kvmpool.secrets import SecretDef, SecretStore

    paths = default_paths(str(root / rpool))
    store = SecretStore(paths)
    sid = str(uuid.uuid4())
    store.define(SecretDef(uuid=sid, usage_type="ceph", usage_id=f"bench {sid}"))
    store.set_value(sid, key)
    manager = Manager(paths)
    pool = pool_def(cluster, rpool, sid)
    manager.define(pool)
    manager.start(pool.name)
    t0 = time.perf_counter()
    for i in range(n):
        manager.create_volume(pool.name, VolumeDef(name=f"img{i}", capacity=GiB))
    took = time.perf_counter() - t0
    manager.ctx.connections.close()
    return took


def fresh_pool(cluster: Cluster, name: str) -> None:
    cluster.create_pool(name)


def drop_pool(cluster: Cluster, name: str) -> None:
    cluster.mon("osd pool delete", pool=name, pool2=name, yes_i_really_really_mean_it=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import base64

    times: dict[str, list[float]] = {"librbd": [], "backend": [], "manager": []}
    t_up = time.perf_counter()
    cluster = Cluster().up()
    print(f"cluster up in {time.perf_counter() - t_up:.1f} s", file=sys.stderr)
    try:
        cluster.mon("config set", who="mon", name="mon_allow_pool_delete", value="true")
        cluster.mon("auth caps", entity="client.kvmpool",
                    caps=["mon", "profile rbd", "osd", "profile rbd", "mgr", "profile rbd"])
        key = base64.b64decode(cluster.user_key)
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for way in times:
                    rpool = f"bench-{way}-{r}"
                    fresh_pool(cluster, rpool)
                    try:
                        runner: dict[str, Any] = {
                            "librbd": lambda p=rpool: run_librbd(cluster, p, args.count),
                            "backend": lambda p=rpool: run_backend(cluster, p, args.count, key),
                            "manager": lambda p=rpool: run_manager(cluster, p, args.count, key,
                                                                   Path(tmp)),
                        }
                        took = runner[way]()
                    finally:
                        drop_pool(cluster, rpool)
                    times[way].append(took)
                    print(f"round {r + 1} {way:8} {took:6.2f} s", file=sys.stderr)
    finally:
        cluster.down()
    base = statistics.median(times["librbd"])
    print(f"\n{args.count} x create 1 GiB image, median of {args.rounds} "
          "(1 mon + 1 mgr + 1 bluestore OSD on 127.0.0.1)")
    print(f"{'way':10} {'median':>8} {'per image':>10} {'ratio':>6}   all rounds")
    for way, ts in times.items():
        med = statistics.median(ts)
        print(f"{way:10} {med:7.2f}s {med / args.count * 1000:8.1f}ms {med / base:6.2f}   "
              + " ".join(f"{t:.2f}" for t in ts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
