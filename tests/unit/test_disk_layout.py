"""disk pools without a disk: libvirt's pool sizes and kvmpool's partition planning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kvmpool.backends.disk import Layout, plan_partition, sizes, stable_path
from kvmpool.errors import InvalidArgument
from kvmpool.host import parted
from kvmpool.host.parted import Region
from kvmpool.model import FreeExtent
from tests.unit.test_host_parted import DOS_PRINT, DOS_SFDISK, GPT_PRINT, GPT_SFDISK

MiB = 1024 * 1024


def layout(printed: str, sfdisk: str) -> Layout:
    types = {p.start: p.type for p in parted.parse_sfdisk(sfdisk)}
    return Layout("/dev/loop0", parted.parse_print(printed), types)


GPT = layout(GPT_PRINT, GPT_SFDISK)
DOS = layout(DOS_PRINT, DOS_SFDISK)


def test_gpt_sizes_as_libvirt_computes_them() -> None:
    capacity, allocation, available, extents = sizes(GPT)
    assert capacity == 134200832  # the end of the last free region, before the backup GPT
    assert allocation == 2 * 10 * MiB
    assert extents == (FreeExtent(17408, 1048576), FreeExtent(22020096, 134200832))
    assert available == sum(e.end - e.start for e in extents)


def test_dos_sizes_leave_the_extended_partition_out_of_the_allocation() -> None:
    capacity, allocation, available, extents = sizes(DOS)
    assert capacity == 134217728
    assert allocation == 10 * MiB + 8 * MiB + 8 * MiB  # p1, p5 (logical) and p3, not p2
    assert len(extents) == 5 and extents[0] == FreeExtent(1024, 1048576)
    assert available == sum(e.end - e.start for e in extents)
    assert DOS.extended() == parted.by_number(DOS.table.partitions, 2)
    assert [DOS.format_of(p) for p in DOS.table.partitions] == [
        "linux", "extended", "linux-swap", "fat32"]


def test_a_free_region_at_byte_0_starts_at_512() -> None:
    table = dataclasses.replace(GPT.table, regions=(Region(None, 0, MiB),))
    assert sizes(Layout("/dev/x", table, {}))[2:] == (MiB - 512, (FreeExtent(512, MiB),))


def test_gpt_plan_first_fit_aligned_named_as_the_kernel_will() -> None:
    plan = plan_partition(GPT, "loop0", "none", 5 * MiB)
    assert (plan.number, plan.name, plan.start, plan.end) == (3, "loop0p3", 21 * MiB, 26 * MiB)
    assert plan.argv("/dev/loop0") == [
        "parted", "-s", "/dev/loop0", "mkpart", "primary", f"{21 * MiB}B", f"{26 * MiB - 1}B"]
    lvm = plan_partition(GPT, "nvme0n1", "linux-lvm", 1000)
    assert lvm.name == "nvme0n1p3" and lvm.end - lvm.start == 1024  # whole sectors
    assert lvm.argv("/dev/nvme0n1") == [
        "parted", "-s", "/dev/nvme0n1", "mkpart", "primary", "ext2", f"{21 * MiB}B",
        f"{21 * MiB + 1023}B", "set", "3", "lvm", "on"]


def test_dos_plan_primary_logical_extended() -> None:
    plan = plan_partition(DOS, "sdb", "linux-swap", 4 * MiB)
    assert (plan.number, plan.name, plan.part_type, plan.fs_type) == (
        4, "sdb4", "primary", "linux-swap")
    assert plan.start >= 70254592 and plan.start % MiB == 0  # outside the extended one
    with pytest.raises(InvalidArgument, match="extended partition already exists"):
        plan_partition(DOS, "sdb", "extended", MiB)
    with pytest.raises(InvalidArgument, match="only on dos"):
        plan_partition(GPT, "sdb", "extended", MiB)
    # four primary slots used: the next one is logical, inside the extended partition
    four = dataclasses.replace(DOS.table, regions=(
        *DOS.table.regions, Region(4, 70254592, 71303168)))
    full = Layout("/dev/sdb", four, DOS.types)
    logical = plan_partition(full, "sdb", "linux", 2 * MiB)
    assert (logical.number, logical.part_type) == (6, "logical")
    assert logical.start > 20971520 and logical.end <= 60000256
    with pytest.raises(InvalidArgument, match="no large enough free extent in the extended"):
        plan_partition(full, "sdb", "linux", 50 * MiB)
    no_ext = Layout("/dev/sdb", four, {k: "83" for k in DOS.types})
    with pytest.raises(InvalidArgument, match="no extended partition found"):
        plan_partition(no_ext, "sdb", "linux", MiB)


def test_no_free_extent_left() -> None:
    with pytest.raises(InvalidArgument, match="no large enough free extent on /dev/loop0"):
        plan_partition(GPT, "loop0", "none", 200 * MiB)
    with pytest.raises(InvalidArgument, match="unknown partition format"):
        plan_partition(GPT, "loop0", "qcow2", MiB)


def test_stable_path_is_a_link_in_the_target_dir(tmp_path: Path) -> None:
    node = tmp_path / "sdb1"
    node.write_bytes(b"")
    links = tmp_path / "by-path"
    links.mkdir()
    (links / "pci-0000:00:1f.2-ata-2-part1").symlink_to(node)
    (links / "other").symlink_to(tmp_path / "sdc1")
    assert stable_path(str(links), str(node)) == str(links / "pci-0000:00:1f.2-ata-2-part1")
    assert stable_path(str(links), str(tmp_path / "sdd1")) == str(tmp_path / "sdd1")


def test_stable_path() -> None:
    assert stable_path("/dev", "/dev/sdb1") == "/dev/sdb1"
    assert stable_path(None, "/dev/sdb1") == "/dev/sdb1"
    assert stable_path("/nonexistent/by-path", "/dev/sdb1") == "/dev/sdb1"
