"""mpath pools on a real dm-multipath map: one iSCSI LUN (tgtd) reached through two portals
(127.0.0.1 and 127.0.0.2, both on the loopback), open-iscsi logged in to both, multipathd
joining the two paths into one map.

Runs in the VM only (tests/vm/run tests/vm/test_mpath_pool.py). multipathd is told to
manage this LUN alone (every other WWID blacklisted), and everything it made is flushed and
its configuration removed again at the end, so later tests see plain disks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Kvmpool
from tests.tools.iscsi_target import MiB, Tgtd

pytestmark = pytest.mark.vm

IQN = "iqn.2026-11.org.kvmpool.test:vm-mpath"
PORTALS = ("127.0.0.1", "127.0.0.2")
LUN_SIZE = 16 * MiB
CONF = Path("/etc/multipath.conf")


def run(*argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check)


def wait(what: str, ready: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(0.25)


@dataclass
class Mpath:
    tgt: Tgtd
    backing: Path  # the LUN's file in tgtd
    wwid: str
    name: str  # the map's name in /dev/mapper
    paths: list[str]  # sdX


def _disks_of(portal: str, port: int) -> list[str]:
    by_path = Path("/dev/disk/by-path")
    links = by_path.glob(f"ip-{portal}:{port}-iscsi-{IQN}-lun-1") if by_path.is_dir() else []
    return [os.path.basename(os.path.realpath(link)) for link in links]


def _maps() -> dict[str, str]:
    """dm-N -> map name, for the multipath maps in sysfs."""
    found = {}
    for dm in Path("/sys/block").glob("dm-*"):
        with contextlib.suppress(OSError):
            if (dm / "dm" / "uuid").read_text().startswith("mpath-"):
                found[dm.name] = (dm / "dm" / "name").read_text().strip()
    return found


@pytest.fixture(scope="module")
def mpath(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mpath]:
    run("modprobe", "-a", "iscsi_tcp", "dm_multipath", "dm_service_time", "dm_round_robin")
    work = tmp_path_factory.mktemp("mpath")
    # their own sessions: iscsid and multipathd signal their process group when they stop
    iscsid = subprocess.Popen(["iscsid", "-f"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    multipathd: subprocess.Popen[bytes] | None = None
    tgt = Tgtd(work)
    try:
        wait("iscsid", lambda: run("iscsiadm", "--mode", "session",
                                   check=False).returncode in (0, 21), 30)
        tgt.start()
        tgt.add_target(IQN, [LUN_SIZE])
        tgt.adm("--mode", "portal", "--op", "new", "--param", f"portal={PORTALS[1]}:{tgt.port}")
        backing = next(work.glob(f"p{tgt.port}-t1-lun1.img"))
        for portal in PORTALS:
            p = f"{portal}:{tgt.port},1"
            run("iscsiadm", "--mode", "node", "--portal", p, "--targetname", IQN, "--op", "new")
            run("iscsiadm", "--mode", "node", "--portal", p, "--targetname", IQN, "--login")
        run("udevadm", "settle", "--timeout=30", check=False)
        paths = [d for portal in PORTALS for d in _disks_of(portal, tgt.port)]
        assert len(paths) == 2, (paths, run("iscsiadm", "--mode", "session", check=False))
        wwid = run("/lib/udev/scsi_id", "--whitelisted", "--replace-whitespace",
                   f"--device=/dev/{paths[0]}").stdout.strip()
        assert wwid and wwid == run("/lib/udev/scsi_id", "--whitelisted",
                                    "--replace-whitespace",
                                    f"--device=/dev/{paths[1]}").stdout.strip()
        CONF.write_text(
            "defaults {\n    user_friendly_names yes\n    find_multipaths off\n}\n"
            'blacklist {\n    wwid ".*"\n}\n'
            f'blacklist_exceptions {{\n    wwid "^{wwid}$"\n}}\n')
        with open(work / "multipathd.log", "wb") as log:
            multipathd = subprocess.Popen(["multipathd", "-d", "-s", "-v3"],
                                          stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait("the multipath map", lambda: len(_maps()) == 1, 90)
        except AssertionError:
            print(run("multipath", "-ll", check=False).stdout)
            print((work / "multipathd.log").read_text()[-3000:])
            raise
        name = next(iter(_maps().values()))
        wait(f"/dev/mapper/{name}", lambda: os.path.exists(f"/dev/mapper/{name}"), 30)
        yield Mpath(tgt, backing, wwid, name, paths)
    finally:
        print("teardown: multipath -F", flush=True)
        run("multipath", "-F", check=False)
        if multipathd is not None:
            run("multipathd", "shutdown", check=False, timeout=30)
            try:
                multipathd.wait(timeout=15)
            except subprocess.TimeoutExpired:
                multipathd.kill()
                multipathd.wait(timeout=10)
        run("multipath", "-F", check=False)
        CONF.unlink(missing_ok=True)
        shutil.rmtree("/etc/multipath", ignore_errors=True)
        print("teardown: logout", flush=True)
        run("iscsiadm", "--mode", "node", "--targetname", IQN, "--logout", check=False)
        run("iscsiadm", "--mode", "node", "--targetname", IQN, "--op", "delete", check=False)
        tgt.stop()
        iscsid.terminate()
        try:
            iscsid.wait(timeout=10)
        except subprocess.TimeoutExpired:
            iscsid.kill()
        assert not _maps(), "a multipath map was left behind"
        print("teardown: done", flush=True)


def test_mpath_pool_lists_and_moves_data(kvmpool: Kvmpool, mpath: Mpath, tmp_path: Path) -> None:
    # data in the LUN before the initiator ever read it (no page cache to go stale)
    data = os.urandom(MiB)
    kvmpool("pool-define-as", "multi", "mpath", "--target", "/dev/mapper")
    err = kvmpool("pool-define-as", "multi2", "mpath", "--target", "/dev/mapper", ok=False).err
    assert "Storage source conflict with pool: 'multi'" in err, err
    kvmpool("pool-start", "multi")
    device = f"/dev/mapper/{mpath.name}"
    minor = os.minor(os.stat(device).st_rdev)
    vol = f"dm-{minor}"
    assert sorted(os.listdir(f"/sys/block/{vol}/slaves")) == sorted(mpath.paths)  # two paths
    lines = [ln.split() for ln in kvmpool("vol-list", "multi", "--details").out.splitlines()[2:]
             if ln.strip()]
    assert lines == [[vol, device, "block", "16.00", "MiB", "16.00", "MiB"]], lines
    info = kvmpool("vol-info", vol, "--pool", "multi", "--bytes").out
    assert f"Capacity:       {LUN_SIZE} bytes" in info, info
    assert f"Allocation:     {LUN_SIZE} bytes" in info, info
    assert kvmpool("vol-path", vol, "--pool", "multi").out == f"{device}\n\n"
    assert kvmpool("vol-key", vol, "--pool", "multi").out == f"{device}\n\n"
    assert kvmpool("vol-name", device).out == f"{vol}\n\n"
    assert f"Capacity:       {LUN_SIZE}" in kvmpool("pool-info", "multi", "--bytes").out
    assert f"<key>{device}</key>" in kvmpool("vol-dumpxml", vol, "--pool", "multi").out

    # upload through the map: the bytes land in tgtd's file behind both paths
    src = tmp_path / "in"
    src.write_bytes(data)
    kvmpool("vol-upload", vol, str(src), "--pool", "multi", "--offset", str(2 * MiB))
    with open(mpath.backing, "rb") as f:
        f.seek(2 * MiB)
        assert f.read(MiB) == data
    # and back with vol-download, with one path gone: the map keeps serving
    run("iscsiadm", "--mode", "node", "--portal", f"{PORTALS[1]}:{mpath.tgt.port},1",
        "--targetname", IQN, "--logout")
    back = tmp_path / "back"
    kvmpool("vol-download", vol, str(back), "--pool", "multi", "--offset", str(2 * MiB),
            "--length", str(MiB))
    assert back.read_bytes() == data
    kvmpool("vol-wipe", vol, "--pool", "multi")
    with open(mpath.backing, "rb") as f:
        assert f.read() == bytes(LUN_SIZE)
    kvmpool("pool-refresh", "multi")  # still one volume on one path
    assert vol in kvmpool("vol-list", "multi").out
    kvmpool("pool-destroy", "multi")
    assert os.path.exists(device), "pool-destroy leaves multipathd's map alone"
    kvmpool("pool-undefine", "multi")
