"""Benchmark (not a timed test): kvmpool's LVM volume create + delete against bare lvcreate
and lvremove, in the same VM boot. It asserts only that both ways worked; the figures are
printed for bench/README.md. Run it alone with:

    bench/lvm_overhead   (= tests/vm/run tests/vm/bench_lvm.py -- -s)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvmpool.host.lvm import Lvm
from kvmpool.host.run import Runner
from kvmpool.manager import Manager
from kvmpool.model import VolumeDef
from kvmpool.paths import default_paths
from kvmpool.xml import parse_pool

pytestmark = pytest.mark.vm
ROUNDS = 3


def _best(fn: object, rounds: int = ROUNDS) -> float:
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        fn(i)  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def test_lvm_create_delete_overhead(disks: list[str], lvm: Lvm, tmp_path: Path) -> None:
    dev = disks[1]
    lvm.pvcreate([dev])
    lvm.vgcreate("benchvg", [dev])
    root = tmp_path / "root"
    manager = Manager(default_paths(str(root)), Runner())
    pool = parse_pool(f"<pool type='logical'><name>bench</name><source><device path='{dev}'/>"
                      "<name>benchvg</name></source></pool>")
    manager.define(pool)
    manager.start("bench")

    def bare(i: int) -> None:
        subprocess.run(["lvcreate", "--yes", "-n", f"b{i}", "-L", "8m", "benchvg"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run(["lvremove", "-f", f"benchvg/b{i}"], check=True, capture_output=True,
                       timeout=120)

    def library(i: int) -> None:
        manager.create_volume("bench", VolumeDef(name=f"k{i}", capacity=8 << 20))
        manager.delete_volume(f"k{i}", "bench")

    env = dict(os.environ, KVMPOOL_ROOT=str(root))

    def cli(i: int) -> None:
        for args in (["vol-create-as", "bench", f"c{i}", "8M"], ["vol-delete", f"c{i}", "bench"]):
            subprocess.run([sys.executable, "-m", "kvmpool", "-q", *args], check=True, env=env,
                           capture_output=True, timeout=300)

    t_bare, t_lib, t_cli = _best(bare), _best(library), _best(cli)
    print(f"\nLVM create+delete of an 8 MiB LV, best of {ROUNDS}, in the TCG VM:")
    print(f"  lvcreate + lvremove            {t_bare:7.2f} s   1.00x")
    print(f"  kvmpool Manager (library)      {t_lib:7.2f} s   {t_lib / t_bare:4.2f}x")
    print(f"  kvmpool CLI (two processes)    {t_cli:7.2f} s   {t_cli / t_bare:4.2f}x")
    assert not [lv for lv in lvm.lvs("benchvg")]
    manager.destroy("bench")
