"""disk pools end to end through the CLI, on real loop devices with real parted."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kvmpool import xml
from tests.conftest import Kvmpool
from tests.root.loops import MiB, head, loopdev, needs_root, one_line_error, sh

pytestmark = [pytest.mark.root, needs_root]
__all__ = ["loopdev"]  # the fixture, imported for pytest


def ptable(dev: str) -> dict[str, object]:
    out = sh("sfdisk", "--json", dev, check=False)
    return json.loads(out)["partitiontable"] if out else {}  # type: ignore[no-any-return]


def nodes(dev: str) -> list[str]:
    return [p["node"] for p in ptable(dev).get("partitions", [])]  # type: ignore[attr-defined]


def define(kvmpool: Kvmpool, dev: str, label: str, name: str = "disk") -> None:
    kvmpool("pool-define-as", name, "disk", "--source-dev", dev, "--source-format", label,
            "--target", "/dev")


@pytest.mark.parametrize(("label", "parted_label", "second"), [
    ("gpt", "gpt", "linux-lvm"), ("dos", "dos", "linux-swap")])
def test_disk_pool_lifecycle(kvmpool: Kvmpool, loopdev: Callable[[int], str], label: str,
                             parted_label: str, second: str) -> None:
    dev = loopdev(128)
    disk = os.path.basename(dev)
    p1, p2, p3 = (f"{disk}p{n}" for n in (1, 2, 3))
    define(kvmpool, dev, label)
    before = head(dev)
    out = kvmpool("--dry-run", "pool-build", "disk").out
    want = "msdos" if label == "dos" else label
    assert f"would run: parted -s {dev} mklabel {want}\n" in out
    assert head(dev) == before
    kvmpool("pool-build", "disk")
    assert ptable(dev)["label"] == parted_label
    kvmpool("pool-start", "disk")

    assert kvmpool("vol-create-as", "disk", p1, "10M").out == f"Vol {p1} created\n\n"
    kvmpool("vol-create-as", "disk", p2, "20M", "--format", second)
    assert nodes(dev) == [f"/dev/{p1}", f"/dev/{p2}"]
    details = kvmpool("vol-list", "disk", "--details").out.splitlines()
    assert details[2].split() == [p1, f"/dev/{p1}", "block", "10.00", "MiB", "10.00", "MiB"]
    assert details[3].split() == [p2, f"/dev/{p2}", "block", "20.00", "MiB", "20.00", "MiB"]
    info = kvmpool("vol-info", p2, "--pool", "disk", "--bytes").out
    assert "Capacity:       20971520 bytes\n" in info and "Type:           block\n" in info
    assert kvmpool("vol-key", f"/dev/{p1}").out == f"/dev/{p1}\n\n"
    vols = {v["name"]: v for v in json.loads(kvmpool("vol-list", "disk", "--json").out)}
    assert vols[p2]["format"] == second and vols[p1]["key"] == f"/dev/{p1}"
    for n in (p1, p2):
        xml.validate(kvmpool("vol-dumpxml", n, "--pool", "disk").out, "volume")
    starts = [p["start"] * 512 for p in ptable(dev)["partitions"]]  # type: ignore[attr-defined]
    assert all(s % MiB == 0 for s in starts)

    # pool sizes and free extents, as libvirt computes them for disk pools
    doc = kvmpool("pool-dumpxml", "disk").out
    xml.validate(doc, "pool")
    extents = [(int(a), int(b)) for a, b in
               re.findall(r"<freeExtent start='(\d+)' end='(\d+)'/>", doc)]
    pool = json.loads(kvmpool("pool-info", "disk", "--json").out)
    assert pool["allocation"] == 30 * MiB
    assert pool["available"] == sum(b - a for a, b in extents)
    assert pool["capacity"] == max(b for _, b in extents)  # the last region is free space
    assert pool["capacity"] <= 128 * MiB

    # data written to a volume survives destroy/start
    data = os.urandom(MiB)
    with open(f"/dev/{p1}", "r+b") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    kvmpool("pool-destroy", "disk")
    kvmpool("pool-start", "disk")
    with open(f"/dev/{p1}", "rb") as f:
        assert f.read(MiB) == data

    # refusals: a name that is not the next partition's; no free extent left
    err = one_line_error(kvmpool("vol-create-as", "disk", "vm1", "10M", ok=False).err)
    assert f"invalid partition name 'vm1', expected '{p3}'" in err
    err = one_line_error(kvmpool("vol-create-as", "disk", p3, "200M", ok=False).err)
    assert "no large enough free extent" in err
    assert nodes(dev) == [f"/dev/{p1}", f"/dev/{p2}"]  # nothing half-made
    err = one_line_error(kvmpool("pool-delete", "disk", ok=False).err)
    assert "still active" in err

    kvmpool("vol-delete", p1, "--pool", "disk")
    assert nodes(dev) == [f"/dev/{p2}"] and not os.path.exists(f"/dev/{p1}")
    # the freed number comes back, in the first free extent that holds the size
    kvmpool("vol-create-as", "disk", p1, "4M")
    first = ptable(dev)["partitions"][0]  # type: ignore[index]
    assert (first["node"], first["start"] * 512, first["size"] * 512) == (f"/dev/{p1}", MiB,
                                                                           4 * MiB)
    kvmpool("vol-delete", p1, "--pool", "disk")
    kvmpool("pool-destroy", "disk")
    err = one_line_error(kvmpool("pool-delete", "disk", ok=False).err)
    assert f"still holds partitions ({p2})" in err
    kvmpool("pool-start", "disk")
    kvmpool("vol-delete", f"/dev/{p2}")  # by path
    kvmpool("pool-destroy", "disk")
    kvmpool("pool-delete", "disk")
    assert sh("blkid", "-p", "-o", "export", dev, check=False) == ""  # the label is gone
    kvmpool("pool-undefine", "disk")


def test_dos_extended_and_logical_partitions(kvmpool: Kvmpool,
                                             loopdev: Callable[[int], str]) -> None:
    dev = loopdev(128)
    disk = os.path.basename(dev)
    define(kvmpool, dev, "dos")
    kvmpool("pool-build", "disk")
    kvmpool("pool-start", "disk")
    for n in (1, 2, 3):
        kvmpool("vol-create-as", "disk", f"{disk}p{n}", "8M")
    kvmpool("vol-create-as", "disk", f"{disk}p4", "40M", "--format", "extended")
    kvmpool("vol-create-as", "disk", f"{disk}p5", "8M", "--format", "fat32")
    kvmpool("vol-create-as", "disk", f"{disk}p6", "8M", "--format", "linux-swap")
    vols = {v["name"]: v for v in json.loads(kvmpool("vol-list", "disk", "--json").out)}
    assert vols[f"{disk}p4"]["format"] == "extended"
    assert vols[f"{disk}p4"]["capacity"] == 40 * MiB
    assert vols[f"{disk}p4"]["allocation"] == 16 * MiB  # its logical partitions
    assert vols[f"{disk}p5"]["format"] == "fat32"
    assert vols[f"{disk}p6"]["format"] == "linux-swap"
    pool = json.loads(kvmpool("pool-info", "disk", "--json").out)
    assert pool["allocation"] == 5 * 8 * MiB  # the extended partition counts 0
    err = one_line_error(kvmpool("vol-create-as", "disk", f"{disk}p7", "30M", ok=False).err)
    assert "no large enough free extent in the extended partition" in err
    err = one_line_error(kvmpool("vol-delete", f"{disk}p4", "--pool", "disk", ok=False).err)
    assert "still holds logical partitions" in err
    err = one_line_error(kvmpool("vol-create-as", "disk", f"{disk}p7", "1M", "--format",
                                 "extended", ok=False).err)
    assert "extended partition already exists" in err
    assert len(nodes(dev)) == 6


def test_build_never_writes_over_data_without_overwrite(
        kvmpool: Kvmpool, loopdev: Callable[[int], str]) -> None:
    dev = loopdev(64)
    sh("mkfs.ext4", "-q", dev)
    define(kvmpool, dev, "gpt")
    before = head(dev)
    for flags in ((), ("--no-overwrite",)):
        err = one_line_error(kvmpool("pool-build", "disk", *flags, ok=False).err)
        assert f"{dev}: it holds an ext4 file system" in err
        assert head(dev) == before
    err = one_line_error(kvmpool("pool-start", "disk", ok=False).err)
    assert "has no partition table" in err
    kvmpool("pool-build", "disk", "--overwrite")
    assert ptable(dev)["label"] == "gpt"
    assert "ext4" not in sh("wipefs", "--no-act", dev)
    before = head(dev)
    err = one_line_error(kvmpool("pool-build", "disk", ok=False).err)
    assert "it holds a gpt partition table" in err and head(dev) == before


def test_start_checks_the_label(kvmpool: Kvmpool, loopdev: Callable[[int], str]) -> None:
    dev = loopdev(64)
    sh("parted", "-s", dev, "mklabel", "gpt")
    define(kvmpool, dev, "dos")
    err = one_line_error(kvmpool("pool-start", "disk", ok=False).err)
    assert f"{dev} has a gpt partition table, not the pool's dos" in err
    assert kvmpool("pool-list", "--all", "--name").out == "disk                \n\n"
    assert "inactive" in kvmpool("pool-list", "--all").out
    define(kvmpool, "/dev/kvmpool-no-such-disk", "gpt", name="gone")
    err = one_line_error(kvmpool("pool-start", "gone", ok=False).err)
    assert "device path '/dev/kvmpool-no-such-disk' doesn't exist" in err


def test_a_mounted_partition_is_not_deleted(kvmpool: Kvmpool, loopdev: Callable[[int], str],
                                            tmp_path: Path) -> None:
    dev = loopdev(64)
    disk = os.path.basename(dev)
    define(kvmpool, dev, "gpt")
    kvmpool("pool-build", "disk")
    kvmpool("pool-start", "disk")
    kvmpool("vol-create-as", "disk", f"{disk}p1", "16M")
    sh("mkfs.ext4", "-q", f"/dev/{disk}p1")
    (tmp_path / "m").mkdir()
    sh("mount", f"/dev/{disk}p1", str(tmp_path / "m"))
    try:
        err = one_line_error(kvmpool("vol-delete", f"{disk}p1", "--pool", "disk", ok=False).err)
        assert f"partition '{disk}p1' is in use" in err
        err = one_line_error(kvmpool("pool-build", "disk", "--overwrite", ok=False).err)
        assert "already active" in err
        kvmpool("pool-destroy", "disk")
        err = one_line_error(kvmpool("pool-build", "disk", "--overwrite", ok=False).err)
        assert "is in use" in err
    finally:
        sh("umount", str(tmp_path / "m"))
    assert nodes(dev) == [f"/dev/{disk}p1"]
