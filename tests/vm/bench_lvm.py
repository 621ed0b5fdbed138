"""Benchmark (not a timed test): kvmpool's LVM volume create + delete against bare lvcreate
and lvremove, in the same VM boot. Four ways, interleaved round by round: the backend alone
(create, read back, delete: what the manager needs at least), the Manager (library), the CLI
(two processes), and the CLI with a ``kvmpool daemon`` running (two clients, two forks).
It asserts only that every way worked; the figures, and the lvm commands each way ran, are
printed for bench/README.md. Run it alone with:

    bench/lvm_overhead   (= tests/vm/run tests/vm/bench_lvm.py -- -s)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kvmpool.backends.base import CreateOptions
from kvmpool.host.lvm import Lvm
from kvmpool.host.run import Runner
from kvmpool.manager import Manager
from kvmpool.model import VolumeDef
from kvmpool.paths import default_paths
from kvmpool.xml import parse_pool

pytestmark = pytest.mark.vm
ROUNDS = 5


def _best(ways: list[Callable[[int], None]], rounds: int = ROUNDS) -> list[float]:
    """The best time of each way over ``rounds`` rounds, the ways interleaved in each round
    (a busy host then slows all of them alike)."""
    times: list[list[float]] = [[] for _ in ways]
    for i in range(rounds):
        for way, spent in zip(ways, times, strict=True):
            t0 = time.perf_counter()
            way(i)
            spent.append(time.perf_counter() - t0)
    return [min(t) for t in times]


def _started_daemon(env: dict[str, str], sock: Path) -> subprocess.Popen[str]:
    """A ``kvmpool daemon`` listening on ``sock`` (its output: communicate() once stopped)."""
    daemon = subprocess.Popen([sys.executable, "-m", "kvmpool", "daemon"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    try:
        while not sock.exists():
            assert daemon.poll() is None and time.monotonic() < deadline, "no kvmpool daemon"
            time.sleep(0.1)
    except BaseException:
        daemon.kill()
        daemon.communicate(timeout=60)
        raise
    return daemon


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

    runner = manager.runner
    backend = manager.backend(pool)
    commands: dict[str, list[str]] = {}

    def backend_only(i: int) -> None:
        # what Manager.create_volume/delete_volume need at least: create, read back, delete
        del runner.history[:]
        vol = VolumeDef(name=f"e{i}", capacity=8 << 20)
        backend.create_volume(pool, vol, CreateOptions())
        made = backend.volume(pool, vol.name)
        assert made is not None and made.capacity == 8 << 20
        backend.delete_volume(pool, made)
        commands["backend"] = [c.argv[0] for c in runner.history]

    def library(i: int) -> None:
        del runner.history[:]
        manager.create_volume("bench", VolumeDef(name=f"k{i}", capacity=8 << 20))
        manager.delete_volume(f"k{i}", "bench")
        commands["manager"] = [c.argv[0] for c in runner.history]

    sock = tmp_path / "daemon" / "cli.sock"
    env = dict(os.environ, KVMPOOL_ROOT=str(root), KVMPOOL_DAEMON_SOCKET=str(sock))
    cold_env = dict(env, KVMPOOL_NO_DAEMON="1")
    kvmpool = str(Path(sys.executable).with_name("kvmpool"))  # the command as users type it

    def cli(i: int) -> None:
        for args in (["vol-create-as", "bench", f"c{i}", "8M"], ["vol-delete", f"c{i}", "bench"]):
            subprocess.run([kvmpool, "-q", *args], check=True, env=cold_env,
                           capture_output=True, timeout=300)

    def cli_warm(i: int) -> None:  # through a running `kvmpool daemon`
        for args in (["vol-create-as", "bench", f"w{i}", "8M"], ["vol-delete", f"w{i}", "bench"]):
            subprocess.run([kvmpool, "-q", *args], check=True, env=env,
                           capture_output=True, timeout=300)

    daemon = _started_daemon(env, sock)
    try:
        t_bare, t_back, t_lib, t_cli, t_warm = _best([bare, backend_only, library, cli,
                                                      cli_warm])
    finally:
        daemon.terminate()
        served = daemon.communicate(timeout=60)[0].count("] kvmpool ")
    print(f"\nLVM create+delete of an 8 MiB LV, best of {ROUNDS}, in the TCG VM:")
    print(f"  lvcreate + lvremove            {t_bare:7.2f} s   1.00x")
    print(f"  kvmpool backend (library)      {t_back:7.2f} s   {t_back / t_bare:4.2f}x")
    print(f"  kvmpool Manager (library)      {t_lib:7.2f} s   {t_lib / t_bare:4.2f}x")
    print(f"  kvmpool CLI (two processes)    {t_cli:7.2f} s   {t_cli / t_bare:4.2f}x")
    print(f"  kvmpool CLI, daemon running    {t_warm:7.2f} s   {t_warm / t_bare:4.2f}x"
          f"   ({served} commands served by the daemon)")
    for way, argv0s in commands.items():
        print(f"  lvm commands, {way:8s} {' '.join(argv0s)}")
    assert not [lv for lv in lvm.lvs("benchvg")]
    manager.destroy("bench")


def test_lvm_pool_info_cost(disks: list[str], lvm: Lvm, tmp_path: Path) -> None:
    """pool-info of a logical pool holding a few LVs against one bare ``vgs`` (what libvirt
    runs for it): the library, the CLI alone, and the CLI through a daemon."""
    dev = disks[1]
    lvm.pvcreate([dev])
    lvm.vgcreate("infovg", [dev])
    for i in range(4):
        lvm.create_linear("infovg", f"lv{i}", 8 << 20)
    root = tmp_path / "root"
    manager = Manager(default_paths(str(root)), Runner())
    manager.define(parse_pool(f"<pool type='logical'><name>info</name><source><device "
                              f"path='{dev}'/><name>infovg</name></source></pool>"))
    manager.start("info")
    sock = tmp_path / "daemon" / "cli.sock"
    env = dict(os.environ, KVMPOOL_ROOT=str(root), KVMPOOL_DAEMON_SOCKET=str(sock))
    cold_env = dict(env, KVMPOOL_NO_DAEMON="1")
    kvmpool = str(Path(sys.executable).with_name("kvmpool"))
    vg = lvm.vg("infovg")

    def bare(_i: int) -> None:
        subprocess.run(["vgs", "--units", "b", "-o", "vg_size,vg_free", "infovg"], check=True,
                       capture_output=True, timeout=120)

    def library(_i: int) -> None:
        del manager.runner.history[:]
        live = manager.live_def(manager.record("info"))
        assert (live.capacity, live.available) == (vg.size, vg.free)

    def cli(_i: int) -> None:
        subprocess.run([kvmpool, "pool-info", "info"], check=True, env=cold_env,
                       capture_output=True, timeout=300)

    def cli_warm(_i: int) -> None:
        subprocess.run([kvmpool, "pool-info", "info"], check=True, env=env,
                       capture_output=True, timeout=300)

    daemon = _started_daemon(env, sock)
    try:
        t_bare, t_lib, t_cli, t_warm = _best([bare, library, cli, cli_warm])
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)
    print(f"\npool-info of a logical pool (4 LVs), best of {ROUNDS}, in the TCG VM:")
    print(f"  vgs                            {t_bare:7.2f} s   1.00x")
    print(f"  kvmpool Manager (library)      {t_lib:7.2f} s   {t_lib / t_bare:4.2f}x"
          f"   lvm commands: {' '.join(c.argv[0] for c in manager.runner.history) or 'none'}")
    print(f"  kvmpool pool-info, alone       {t_cli:7.2f} s   {t_cli / t_bare:4.2f}x")
    print(f"  kvmpool pool-info, daemon      {t_warm:7.2f} s   {t_warm / t_bare:4.2f}x")
    manager.destroy("info")
