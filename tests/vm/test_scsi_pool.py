"""scsi pools on the kernel's scsi_debug HBA, through the kvmpool CLI, inside the test VM.

scsi_debug makes a SCSI host on a pseudo bus with RAM-backed disks (every LUN shares one
16 MiB store) whose VPD ids give udev its /dev/disk/by-id links (it gets no by-path link:
no PCI parent). The ``parentaddr`` form needs a SCSI host on a PCI device: tests/vm/run
attaches an empty virtio-scsi-pci controller to every VM for it.
"""

from __future__ import annotations

import glob
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Kvmpool
from tests.vm.conftest import MiB

pytestmark = pytest.mark.vm

BY_ID = "/dev/disk/by-id"
SD = "/sys/bus/pseudo/drivers/scsi_debug"
SIZE = 16 * MiB


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _disk_of(host: int, hctl: str) -> str:
    """/dev/sdX of LU ``host:hctl`` (``0:0:1``)."""
    return "/dev/" + os.listdir(f"/sys/bus/scsi/devices/{host}:{hctl}/block")[0]


def _wait_for_links(host: int, count: int) -> None:
    """udev has made a by-id link for ``count`` disks of the host."""
    deadline = time.monotonic() + 60
    while True:
        sh("udevadm", "settle", "--timeout=30", check=False)
        disks = {os.path.basename(d) for d in glob.glob(
            f"/sys/bus/scsi/devices/{host}:*/block/*")}
        linked = {os.path.basename(os.path.realpath(p)) for p in glob.glob(f"{BY_ID}/*")}
        if len(disks) >= count and disks <= linked:
            return
        assert time.monotonic() < deadline, f"no by-id links for {disks - linked}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def scsi_debug() -> Iterator[int]:
    """scsi_debug loaded with one target and two 16 MiB LUNs: its host number."""
    before = set(os.listdir("/sys/class/scsi_host")) if os.path.isdir(
        "/sys/class/scsi_host") else set()
    sh("modprobe", "scsi_debug", f"dev_size_mb={SIZE // MiB}", "num_tgts=1", "max_luns=2")
    try:
        new = [h for h in os.listdir("/sys/class/scsi_host") if h not in before
               and _read(f"/sys/class/scsi_host/{h}/proc_name") == "scsi_debug"]
        assert len(new) == 1, new
        host = int(new[0].removeprefix("host"))
        _wait_for_links(host, 2)
        yield host
    finally:
        sh("udevadm", "settle", "--timeout=30", check=False)
        result = sh("modprobe", "-r", "scsi_debug", check=False)
        assert result.returncode == 0, result.stderr
        assert not os.path.exists(SD)


def _define(kvmpool: Kvmpool, name: str, adapter: str, target: str = BY_ID) -> None:
    kvmpool("pool-define-as", name, "scsi", "--adapter-name", adapter, "--target", target)


def test_pool_by_host_name(kvmpool: Kvmpool, scsi_debug: int, tmp_path: Path) -> None:
    host = scsi_debug
    _define(kvmpool, "hba", f"host{host}")
    assert kvmpool("pool-start", "hba").out == "Pool hba started\n\n"
    assert "State:          running" in kvmpool("pool-info", "hba").out
    out = kvmpool("vol-list", "hba", "--details").out
    assert "unit:0:0:0" in out and "unit:0:0:1" in out and out.count("16.00 MiB") >= 2, out
    info = kvmpool("pool-info", "hba", "--bytes").out
    assert f"Capacity:       {2 * SIZE}\n" in info and "Available:      0\n" in info

    path = kvmpool("vol-path", "unit:0:0:1", "--pool", "hba").out.strip()
    assert path.startswith(BY_ID + "/") and os.path.realpath(path) == _disk_of(host, "0:0:1")
    key = kvmpool("vol-key", "unit:0:0:1", "--pool", "hba").out.strip()
    expected = sh("/lib/udev/scsi_id", "--replace-whitespace", "--whitelisted", "--device",
                  path).stdout.strip()
    assert key == expected and key != path, (key, expected)
    assert kvmpool("vol-name", path).out.strip() == "unit:0:0:1"  # by path, no --pool
    assert f"<capacity unit='bytes'>{SIZE}</capacity>" in kvmpool(
        "vol-dumpxml", "unit:0:0:1", "--pool", "hba").out

    data = tmp_path / "data"
    data.write_bytes(os.urandom(MiB))
    kvmpool("vol-upload", "unit:0:0:1", str(data), "--pool", "hba", "--offset", str(MiB))
    back = tmp_path / "back"
    kvmpool("vol-download", "unit:0:0:1", str(back), "--pool", "hba", "--offset", str(MiB),
            "--length", str(MiB))
    assert back.read_bytes() == data.read_bytes()
    with open(_disk_of(host, "0:0:1"), "rb") as f:  # really on the LUN
        f.seek(MiB)
        assert f.read(MiB) == data.read_bytes()

    kvmpool("vol-wipe", "unit:0:0:1", "--pool", "hba")
    kvmpool("vol-download", "unit:0:0:1", str(back), "--pool", "hba")
    wiped = back.read_bytes()
    assert len(wiped) == SIZE and wiped.count(0) == SIZE
    err = kvmpool("vol-wipe", "unit:0:0:1", "--pool", "hba", "--algorithm", "trim",
                  ok=False).err
    assert len(err.splitlines()) == 1 and "cannot wipe with 'trim'" in err

    # A LUN added behind kvmpool's back appears after pool-refresh (which scans the host).
    Path(SD, "max_luns").write_text("3")
    kvmpool("pool-refresh", "hba")
    _wait_for_links(host, 3)
    out = kvmpool("vol-list", "hba", "--details").out
    assert "unit:0:0:2" in out, out
    assert f"Capacity:       {3 * SIZE}\n" in kvmpool("pool-info", "hba", "--bytes").out

    # One adapter, one pool: host N and scsi_hostN name the same host.
    err = kvmpool("pool-define-as", "again", "scsi", "--adapter-name", f"scsi_host{host}",
                  "--target", BY_ID, ok=False).err
    assert "hba" in err and len(err.splitlines()) == 1, err
    assert kvmpool("pool-destroy", "hba").out == "Pool hba destroyed\n\n"
    kvmpool("pool-undefine", "hba")


def test_bad_adapters_fail_in_one_line(kvmpool: Kvmpool, scsi_debug: int) -> None:
    _define(kvmpool, "nohost", "host999")
    result = kvmpool("pool-start", "nohost", ok=False)
    assert result.code != 0 and result.err == (
        "error: Failed to start pool nohost: SCSI host 'host999' does not exist "
        "(hint: list the hosts with: ls /sys/class/scsi_host)\n")
    _define(kvmpool, "badname", "sdz")
    result = kvmpool("pool-start", "badname", ok=False)
    assert result.code != 0 and len(result.err.splitlines()) == 1
    assert "invalid adapter name 'sdz' for a SCSI pool" in result.err

    kvmpool("pool-define-as", "fc", "scsi", "--adapter-wwnn", "5001a4aa3d6d7e9f",
            "--adapter-wwpn", "5001a4ab0b6fe2a0", "--target", BY_ID)
    result = kvmpool("pool-start", "fc", ok=False)
    assert result.code != 0 and len(result.err.splitlines()) == 1
    assert ("no vHBA with wwnn 5001a4aa3d6d7e9f and wwpn 5001a4ab0b6fe2a0 exists; creating "
            "a vHBA needs Fibre Channel hardware with NPIV, and this host has none"
            in result.err), result.err
    for name in ("nohost", "badname", "fc"):
        assert "State:          inactive" in kvmpool("pool-info", name).out


def _pci_hosts() -> list[tuple[int, str, int]]:
    """(host, PCI address, unique_id) of SCSI hosts that sit on a PCI device."""
    found = []
    for link in sorted(glob.glob("/sys/class/scsi_host/host*")):
        parts = os.path.realpath(link).split(os.sep)
        pci = [p for p in parts if len(p) == 12 and p[4] == ":" and p[7] == ":" and p[10] == "."]
        if pci:
            host = int(os.path.basename(link).removeprefix("host"))
            found.append((host, pci[-1], int(_read(f"{link}/unique_id"))))
    return found


def test_pool_by_parent_pci_address(kvmpool: Kvmpool, scsi_debug: int,
                                    tmp_path: Path) -> None:
    hosts = _pci_hosts()
    if not hosts:
        pytest.fail("no SCSI host on a PCI device in this VM: tests/vm/run should attach "
                    "a virtio-scsi-pci controller")
    host, address, unique_id = hosts[0]
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")

    def doc(name: str, uid: int) -> Path:
        path = tmp_path / f"{name}.xml"
        path.write_text(
            f"<pool type='scsi'><name>{name}</name><source><adapter type='scsi_host'>"
            f"<parentaddr unique_id='{uid}'><address domain='0x{domain}' bus='0x{bus}' "
            f"slot='0x{slot}' function='0x{function}'/></parentaddr></adapter></source>"
            f"<target><path>/dev/disk/by-path</path></target></pool>")
        return path

    kvmpool("pool-define", str(doc("pci", unique_id)))
    assert f"<parentaddr unique_id='{unique_id}'>" in kvmpool("pool-dumpxml", "pci").out
    kvmpool("pool-start", "pci")
    assert "State:          running" in kvmpool("pool-info", "pci").out
    # the pool is that host: one pool per adapter, whichever way it is named
    err = kvmpool("pool-define-as", "same", "scsi", "--adapter-name", f"host{host}",
                  "--target", BY_ID, ok=False).err
    assert "pci" in err and len(err.splitlines()) == 1, err
    kvmpool("pool-destroy", "pci")
    kvmpool("pool-define", str(doc("wrong", unique_id + 1000)))
    err = kvmpool("pool-start", "wrong", ok=False).err
    assert err.startswith(f"error: Failed to start pool wrong: no SCSI host under PCI device "
                          f"{address} has unique_id {unique_id + 1000}"), err
