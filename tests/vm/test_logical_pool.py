"""logical pools on real LVM (device-mapper), through the kvmpool CLI, inside the test VM."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kvmpool.host.lvm import Lvm
from kvmpool.names import TEMP_PREFIX
from tests.conftest import Kvmpool
from tests.vm.conftest import BlockIO, MiB

pytestmark = pytest.mark.vm


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _created(snapshot: dict[str, object]) -> datetime.datetime:
    """A listed snapshot's creation time: ISO 8601 in UTC, whole seconds (LVM's lv_time)."""
    when = datetime.datetime.fromisoformat(str(snapshot["created"]))
    assert when.utcoffset() == datetime.timedelta(0)
    return when


def test_the_seed_walkthrough_word_for_word(kvmpool: Kvmpool, disks: list[str],
                                            lvm: Lvm) -> None:
    """pvcreate and vgcreate by hand, then the story every release must pass."""
    dev = disks[0]
    sh("pvcreate", dev)
    sh("vgcreate", "test", dev)
    out = kvmpool("pool-define-as", "guest", "--type", "logical", "--source-dev", dev,
                  "--source-name", "test").out
    assert out == "Pool guest defined\n\n"
    assert kvmpool("pool-build", "guest").out == "Pool guest built\n\n"
    assert kvmpool("pool-start", "guest").out == "Pool guest started\n\n"
    assert kvmpool("pool-autostart", "guest").out == "Pool guest marked as autostarted\n\n"
    assert " guest   active   yes" in kvmpool("pool-list", "--all").out
    assert kvmpool("vol-create-as", "guest", "vm1", "10G").out == "Vol vm1 created\n\n"
    listing = kvmpool("vol-list", "guest").out
    assert " vm1    /dev/test/vm1\n" in listing
    shown = sh("lvdisplay", "test/vm1")
    assert "LV Name                vm1" in shown and "10.00 GiB" in shown
    info = kvmpool("vol-info", "vm1", "--pool", "guest", "--bytes").out
    assert "Capacity:       10737418240 bytes" in info
    key = kvmpool("vol-key", "vm1", "--pool", "guest").out.strip()
    assert key == lvm.lv("test", "vm1").uuid
    assert kvmpool("pool-destroy", "guest").out == "Pool guest destroyed\n\n"
    assert kvmpool("pool-delete", "guest").out == "Pool guest deleted\n\n"
    assert kvmpool("pool-undefine", "guest").out == "Pool guest has been undefined\n\n"
    assert "test" not in sh("vgs", "--noheadings", "-o", "vg_name").split()


def test_the_story_from_a_bare_disk_and_refusals(kvmpool: Kvmpool, disks: list[str],
                                                 lvm: Lvm) -> None:
    dev, other = disks[0], disks[1]
    # A disk holding a file system is never written over without --overwrite.
    sh("mkfs.ext4", "-q", dev)
    with open(dev, "rb") as f:
        head = f.read(4 * MiB)
    kvmpool("pool-define-as", "guest", "logical", "--source-dev", dev, "--source-name", "kvmvg")
    err = kvmpool("pool-build", "guest", ok=False).err
    assert "ext4" in err and "--overwrite" in err and len(err.splitlines()) == 1
    with open(dev, "rb") as f:
        assert f.read(4 * MiB) == head
    kvmpool("pool-build", "guest", "--overwrite")
    assert [pv.vg for pv in lvm.pvs() if pv.name == dev] == ["kvmvg"]
    kvmpool("pool-start", "guest")
    info = json.loads(kvmpool("pool-info", "guest", "--json").out)
    vg = lvm.vg("kvmvg")
    assert (info["capacity"], info["available"]) == (vg.size, vg.free)
    # A VG of that name on other disks is refused by a second pool's build.
    kvmpool("pool-define-as", "other", "logical", "--source-dev", other, "--source-name",
            "kvmvg")
    err = kvmpool("pool-build", "other", ok=False).err
    assert "already exists on" in err
    # A full VG: a clear error and no half-made LV.
    err = kvmpool("vol-create-as", "guest", "huge", "64G", ok=False).err
    assert err.startswith("error: Failed to create vol huge") and len(err.splitlines()) == 1
    assert "huge" not in [lv.name for lv in lvm.lvs("kvmvg")]
    # Names that could escape or that LVM reserves.
    for bad in ("../x", "a/b", "snapshot1", "x_tdata"):
        kvmpool("vol-create-as", "guest", bad, "4M", ok=False)
    # An open volume cannot be deleted.
    kvmpool("vol-create-as", "guest", "busy", "8M")
    fd = os.open("/dev/kvmvg/busy", os.O_RDONLY)
    try:
        err = kvmpool("vol-delete", "busy", "--pool", "guest", ok=False).err
        assert "in use" in err or "open" in err
    finally:
        os.close(fd)
    kvmpool("vol-delete", "busy", "--pool", "guest")
    kvmpool("pool-destroy", "guest")
    kvmpool("pool-delete", "guest")
    assert not [pv for pv in lvm.pvs() if pv.name == dev]


def test_volume_data_through_clone_resize_snapshot_upload_wipe(
    kvmpool: Kvmpool, disks: list[str], lvm: Lvm, blockio: BlockIO, tmp_path: Path
) -> None:
    kvmpool("pool-define-as", "guest", "logical", "--source-dev", disks[0], "--source-name",
            "datavg")
    kvmpool("pool-start", "guest", "--build")
    kvmpool("vol-create-as", "guest", "a", "32M")
    data = blockio.pattern(8 * MiB, 1)
    blockio.write("/dev/datavg/a", data)
    # clone: an independent copy with the same bytes
    assert kvmpool("vol-clone", "a", "b", "--pool", "guest").out == "Vol b cloned from a\n\n"
    assert blockio.read("/dev/datavg/b", 8) == data
    # resize keeps the data
    kvmpool("vol-resize", "a", "64M", "--pool", "guest")
    assert lvm.lv("datavg", "a").size == 64 * MiB
    assert blockio.read("/dev/datavg/a", 8) == data
    # classic snapshot: revert brings the data back and keeps the snapshot
    before = _now()
    kvmpool("vol-snapshot-create", "a", "s1", "--pool", "guest", "--size", "16M")
    made = json.loads(kvmpool("vol-snapshot-list", "a", "--pool", "guest", "--json").out)
    assert before <= _created(made[0]) <= _now()  # when it was made, as qcow2's say
    blockio.write("/dev/datavg/a", blockio.pattern(8 * MiB, 2))
    kvmpool("vol-snapshot-revert", "a", "s1", "--pool", "guest")
    assert blockio.read("/dev/datavg/a", 8) == data
    snaps = json.loads(kvmpool("vol-snapshot-list", "a", "--pool", "guest", "--json").out)
    assert [s["name"] for s in snaps] == ["s1"] and snaps[0]["valid"] is True
    assert _created(made[0]) <= _created(snaps[0]) <= _now()  # revert takes it anew
    assert f" {snaps[0]['created']} " in kvmpool("vol-snapshot-list", "a", "--pool", "guest").out
    kvmpool("vol-snapshot-delete", "a", "s1", "--pool", "guest")
    # upload / download round trip
    src = tmp_path / "up.bin"
    src.write_bytes(blockio.pattern(4 * MiB, 3))
    kvmpool("vol-upload", "b", str(src), "--pool", "guest", "--offset", "1M")
    out = tmp_path / "down.bin"
    kvmpool("vol-download", "b", str(out), "--pool", "guest", "--offset", "1M", "--length", "4M")
    assert out.read_bytes() == src.read_bytes()
    # wipe
    kvmpool("vol-wipe", "b", "--pool", "guest")
    assert blockio.read("/dev/datavg/b", 8) == bytes(8 * MiB)
    # a qcow2 file from a dir pool into an LV (another pool)
    kvmpool("pool-define-as", "files", "dir", "--target", str(tmp_path / "files"))
    kvmpool("pool-start", "files", "--build")
    kvmpool("vol-create-as", "files", "img.qcow2", "16M", "--format", "qcow2")
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 2M", str(tmp_path / "files/img.qcow2"))
    spec = tmp_path / "lv.xml"
    spec.write_text("<volume><name>fromfile</name><capacity>0</capacity></volume>")
    kvmpool("vol-create-from", "guest", str(spec), "img.qcow2", "--inputpool", "files")
    assert blockio.read("/dev/datavg/fromfile", 2) == b"\x5a" * (2 * MiB)
    assert lvm.lv("datavg", "fromfile").size == 16 * MiB
    # sparse LV (allocation below capacity), as libvirt makes them
    kvmpool("vol-create-as", "guest", "sparse", "256M", "--allocation", "8M")
    vol = json.loads(kvmpool("vol-info", "sparse", "--pool", "guest", "--json").out)
    assert vol["capacity"] == 256 * MiB and vol["allocation"] < vol["capacity"]
    listing = kvmpool("vol-list", "guest", "--details").out
    for name in ("a", "b", "fromfile", "sparse"):
        assert f" {name} " in listing


def test_thin_pool_provisioned_and_used(kvmpool: Kvmpool, disks: list[str], lvm: Lvm,
                                        blockio: BlockIO) -> None:
    kvmpool("pool-define-as", "thin", "logical", "--source-dev", disks[0], "--source-name",
            "thinvg", "--thin-pool", "tp")
    assert "kvmpool:thinpool name='tp'" in kvmpool("pool-dumpxml", "thin").out
    kvmpool("pool-build", "thin")
    assert lvm.lv("thinvg", "tp").is_thin_pool
    kvmpool("pool-start", "thin")
    kvmpool("vol-create-as", "thin", "t1", "8G")  # far more than the disk holds: thin
    lv = lvm.lv("thinvg", "t1")
    assert lv.is_thin and lv.size == 8 << 30
    data = blockio.pattern(16 * MiB, 4)
    blockio.write("/dev/thinvg/t1", data)
    info = json.loads(kvmpool("pool-info", "thin", "--json").out)
    assert info["thin"]["pool"] == "tp"
    assert info["thin"]["provisioned"] == 8 << 30
    assert 16 * MiB <= info["thin"]["data_used"] < 64 * MiB
    text = kvmpool("pool-info", "thin").out
    assert "Provisioned:    8.00 GiB" in text and "Thin data:" in text
    vol = json.loads(kvmpool("vol-info", "t1", "--pool", "thin", "--json").out)
    assert vol["capacity"] == 8 << 30 and vol["allocation"] < 64 * MiB
    # thin snapshot: revert restores the data, the snapshot stays
    kvmpool("vol-snapshot-create", "t1", "before", "--pool", "thin")
    blockio.write("/dev/thinvg/t1", blockio.pattern(16 * MiB, 5))
    kvmpool("vol-snapshot-revert", "t1", "before", "--pool", "thin")
    assert blockio.read("/dev/thinvg/t1", 16) == data
    snaps = json.loads(kvmpool("vol-snapshot-list", "t1", "--pool", "thin", "--json").out)
    assert [s["name"] for s in snaps] == ["before"]
    assert _created(snaps[0]) <= _now()
    kvmpool("vol-snapshot-delete", "t1", "before", "--pool", "thin")
    kvmpool("vol-delete", "t1", "--pool", "thin")
    kvmpool("pool-destroy", "thin")


def _processes() -> list[tuple[int, str]]:
    """(parent pid, command name) of every process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        found.append((int(rest.split()[1]), comm))
    return found


def _children(pid: int) -> list[str]:
    return [comm for parent, comm in _processes() if parent == pid]


def _interrupt(argv: list[str], root: Path, ready: Callable[[subprocess.Popen[bytes]], bool],
               sig: signal.Signals) -> int:
    """Run kvmpool ARGV, send SIG to kvmpool alone once ``ready`` says so; its exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "kvmpool", "--root", str(root), *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not ready(proc):
            assert proc.poll() is None, f"kvmpool {argv[0]} ended before the signal"
            assert time.monotonic() < deadline, f"kvmpool {argv[0]} never got there"
            time.sleep(0.02)
        proc.send_signal(sig)
        return proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()


def _temp_lvs(vg: str) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return [n for n in os.listdir(f"/dev/{vg}") if n.startswith(TEMP_PREFIX)]
    return []


def _lvm_idle() -> None:
    """Wait until no lvm command runs (one kvmpool left behind when it was killed)."""
    deadline = time.monotonic() + 120
    lvm = ("lvcreate", "lvremove", "lvrename", "lvs")
    while any(comm in lvm for _, comm in _processes()):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_an_interrupted_create_or_clone_leaves_nothing_that_looks_whole(
    kvmpool: Kvmpool, disks: list[str], lvm: Lvm, blockio: BlockIO
) -> None:
    """SIGINT (Ctrl-C) and SIGKILL while lvcreate runs and while a clone copies data."""
    root = kvmpool.root
    kvmpool("pool-define-as", "guest", "logical", "--source-dev", disks[0], "--source-name",
            "intvg")
    kvmpool("pool-start", "guest", "--build")
    # vol-create-as, signalled while its lvcreate runs
    for sig in (signal.SIGINT, signal.SIGKILL):
        rc = _interrupt(["vol-create-as", "guest", "big", "1G"], root,
                        lambda p: "lvcreate" in _children(p.pid), sig)
        assert rc != 0
        _lvm_idle()
        lvs = {lv.name: lv for lv in lvm.lvs("intvg")}
        if sig is signal.SIGINT:  # kvmpool stopped lvcreate and removed what it had made
            assert "big" not in lvs
        elif "big" in lvs:  # SIGKILL: the orphaned lvcreate finished its (atomic) work
            assert lvs["big"].active and lvs["big"].size == 1 << 30
            kvmpool("vol-delete", "big", "--pool", "guest")
    # vol-clone of 192 MiB, signalled while the data is being copied
    kvmpool("vol-create-as", "guest", "src", "192M")
    data = blockio.pattern(8 * MiB, 7)
    blockio.write("/dev/intvg/src", data, offset_mib=184)
    for sig in (signal.SIGINT, signal.SIGKILL):
        rc = _interrupt(["vol-clone", "src", "copy", "--pool", "guest"], root,
                        lambda p: bool(_temp_lvs("intvg")), sig)
        assert rc != 0
        _lvm_idle()
        names = [lv.name for lv in lvm.lvs("intvg")]
        assert "copy" not in names and not os.path.exists("/dev/intvg/copy")
        left = [n for n in names if n.startswith(TEMP_PREFIX)]
        # Ctrl-C removes the unfinished LV; after SIGKILL it stays under its temporary name,
        # is never listed, and the next clone (or pool-start) removes it
        assert left == [] if sig is signal.SIGINT else len(left) == 1
        assert "copy" not in kvmpool("vol-list", "guest").out
        assert TEMP_PREFIX not in kvmpool("vol-list", "guest", "--details").out
    # the VG is usable: the clone works and the leftover is gone
    kvmpool("vol-clone", "src", "copy", "--pool", "guest")
    assert not [lv.name for lv in lvm.lvs("intvg") if lv.name.startswith(TEMP_PREFIX)]
    assert blockio.read("/dev/intvg/copy", 8, offset_mib=184) == data
    kvmpool("vol-delete", "copy", "--pool", "guest")
    kvmpool("vol-delete", "src", "--pool", "guest")
    assert lvm.lvs("intvg") == ()
    kvmpool("pool-destroy", "guest")
