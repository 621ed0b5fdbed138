"""kvmpool.host.lvm against real lvm2 and device-mapper, on the VM's scratch disks.

Run with: tests/vm/run tests/vm/test_lvm_tools.py   (one test: add ::test_name)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kvmpool.backends.base import Context
from kvmpool.backends.logical import LogicalBackend, vg_of
from kvmpool.errors import AlreadyExists, InUse, InvalidArgument, NotFound
from kvmpool.host import lvmdisk
from kvmpool.host.lvm import LogicalVolume, Lvm
from kvmpool.host.run import Runner
from kvmpool.model import PoolDef
from kvmpool.xml import parse_pool

if TYPE_CHECKING:
    from conftest import BlockIO

pytestmark = pytest.mark.vm

MiB = 1 << 20

VG = "kvmpool_vm"


def by_name(lvs: tuple[LogicalVolume, ...]) -> dict[str, LogicalVolume]:
    return {lv.name: lv for lv in lvs}


def test_pv_vg_linear_resize_snapshot_merge_remove(
    lvm: Lvm, disks: list[str], blockio: BlockIO
) -> None:
    io = blockio
    lvm.pvcreate(disks[:2])
    pvs = {pv.name: pv for pv in lvm.pvs(disks[:2])}
    assert set(pvs) == set(disks[:2])
    assert all(pv.vg == "" and pv.fmt == "lvm2" for pv in pvs.values())

    lvm.vgcreate(VG, disks[:2])
    vg = lvm.vg(VG)
    assert (vg.pv_count, vg.lv_count, vg.extent_size) == (2, 0, 4 * MiB)
    assert vg.free == vg.size == vg.extent_count * vg.extent_size
    assert {pv.vg for pv in lvm.pvs(disks[:2])} == {VG}

    # linear LV: 8 MiB of data written with dd and read back
    lvm.create_linear(VG, "lin", 8 * MiB)
    lin = lvm.lv(VG, "lin")
    assert (lin.size, lin.segtype, lin.path) == (8 * MiB, "linear", f"/dev/{VG}/lin")
    assert lin.active and not lin.is_snapshot and not lin.is_thin
    assert lin.devices == (disks[0],)
    data_a = io.pattern(8 * MiB, seed=1)
    io.write(lin.path, data_a)
    assert io.digest(io.read(lin.path, 8)) == io.digest(data_a)

    # grow: the data stays; a size that is not a whole extent is rounded up
    lvm.lvresize(VG, "lin", 14 * MiB)
    lin = lvm.lv(VG, "lin")
    assert lin.size == 16 * MiB
    assert io.digest(io.read(lin.path, 8)) == io.digest(data_a)
    assert lvm.vg(VG).free == vg.free - 16 * MiB

    # classic snapshot keeps the old data while the origin changes; merge restores it
    lvm.create_snapshot(VG, "lin", "snap", 8 * MiB)
    lvs = by_name(lvm.lvs(VG))
    snap, lin = lvs["snap"], lvs["lin"]
    assert snap.is_snapshot and not snap.is_sparse and snap.backing == "lin"
    assert lin.is_origin and not lin.is_snapshot
    assert snap.data_percent == 0.0
    data_b = io.pattern(4 * MiB, seed=2)
    io.write(lin.path, data_b)
    assert io.digest(io.read(lin.path, 4)) == io.digest(data_b)
    assert io.digest(io.read(snap.path, 8)) == io.digest(data_a)
    assert (lvm.lv(VG, "snap").data_percent or 0) > 0

    lvm.merge(VG, "snap")
    assert io.digest(io.read(lin.path, 8)) == io.digest(data_a)
    lvs = by_name(lvm.lvs(VG))
    assert set(lvs) == {"lin"} and not lvs["lin"].is_origin

    # shrink (asked for explicitly), deactivate, activate, remove
    lvm.lvresize(VG, "lin", 8 * MiB, shrink=True)
    assert lvm.lv(VG, "lin").size == 8 * MiB
    lvm.vgchange(VG, active=False)
    assert not lvm.lv(VG, "lin").active
    assert not Path(lin.path).exists()
    lvm.vgchange(VG, active=True)
    assert lvm.lv(VG, "lin").active
    assert io.digest(io.read(lin.path, 8)) == io.digest(data_a)

    lvm.vgremove(VG)
    with pytest.raises(NotFound):
        lvm.vg(VG)
    lvm.pvremove(disks[:2])
    assert lvm.pvs() == ()


def test_thin_pool_thin_lv_thin_snapshot_and_sparse(
    lvm: Lvm, disks: list[str], blockio: BlockIO
) -> None:
    io = blockio
    lvm.pvcreate(disks[:1])
    lvm.vgcreate(VG, disks[:1])

    lvm.create_thin_pool(VG, "pool", 32 * MiB)
    lvm.create_thin(VG, "pool", "thin", 64 * MiB)
    lvs = by_name(lvm.lvs(VG))
    pool, thin = lvs["pool"], lvs["thin"]
    assert pool.is_thin_pool and pool.segtype == "thin-pool" and pool.size == 32 * MiB
    assert pool.path == "" and pool.data_percent == 0.0 and pool.metadata_percent is not None
    assert thin.is_thin and thin.segtype == "thin" and thin.pool_lv == "pool"
    assert thin.size == 64 * MiB and thin.devices == () and not thin.is_thin_snapshot

    data_a = io.pattern(4 * MiB, seed=3)
    io.write(thin.path, data_a)
    assert (lvm.lv(VG, "pool").data_percent or 0) > 0

    # thin snapshot: skip-activation by default, activated with -K, keeps the old data
    lvm.create_thin_snapshot(VG, "thin", "tsnap")
    tsnap = lvm.lv(VG, "tsnap")
    assert tsnap.is_thin_snapshot and tsnap.backing == "thin" and tsnap.pool_lv == "pool"
    assert tsnap.skip_activation and not tsnap.active
    lvm.lvchange(VG, "tsnap", active=True, ignore_skip=True)
    tsnap = lvm.lv(VG, "tsnap")
    assert tsnap.active
    data_b = io.pattern(4 * MiB, seed=4)
    io.write(thin.path, data_b)
    assert io.digest(io.read(tsnap.path, 4)) == io.digest(data_a)
    assert io.digest(io.read(thin.path, 4)) == io.digest(data_b)

    # merge the thin snapshot back (the origin is not open: it happens at once)
    lvm.lvchange(VG, "tsnap", active=False)
    lvm.merge(VG, "tsnap")
    assert io.digest(io.read(thin.path, 4)) == io.digest(data_a)
    assert "tsnap" not in by_name(lvm.lvs(VG))

    # libvirt's sparse LV: a snapshot of a virtual zero origin
    lvm.create_sparse(VG, "sparse", 64 * MiB, 4 * MiB)
    sparse = lvm.lv(VG, "sparse")
    assert sparse.is_sparse and sparse.backing is None and sparse.size == 4 * MiB
    assert io.read(sparse.path, 1) == bytes(MiB)

    hidden = by_name(lvm.lvs(VG, hidden=True))
    assert {"[pool_tdata]", "[pool_tmeta]"} <= set(hidden)
    assert hidden["[pool_tdata]"].hidden

    lvm.lvremove(VG, "thin")
    lvm.lvremove(VG, "pool")
    assert set(by_name(lvm.lvs(VG))) == {"sparse"}
    lvm.vgremove(VG)
    lvm.pvremove(disks[:1])


def test_failures_are_classified(lvm: Lvm, disks: list[str]) -> None:
    with pytest.raises(NotFound):
        lvm.vg("no_such_vg")
    with pytest.raises(NotFound):
        lvm.create_linear("no_such_vg", "x", MiB)

    lvm.pvcreate(disks[2:3])
    lvm.vgcreate(VG, disks[2:3])
    with pytest.raises(AlreadyExists):
        lvm.vgcreate(VG, disks[2:3])
    with pytest.raises(InUse):
        lvm.pvcreate(disks[2:3])  # a PV of a VG
    with pytest.raises(NotFound):
        lvm.lv(VG, "missing")
    with pytest.raises(NotFound):
        lvm.lvremove(VG, "missing")

    lvm.create_linear(VG, "lv", 4 * MiB)
    with pytest.raises(AlreadyExists):
        lvm.create_linear(VG, "lv", 4 * MiB)
    with pytest.raises(InvalidArgument) as err:
        lvm.create_linear(VG, "huge", lvm.vg(VG).free + 64 * MiB)
    assert "free space" in err.value.message and err.value.hint
    with pytest.raises(InvalidArgument):
        lvm.lvresize(VG, "lv", 4 * MiB)  # the size it already has

    fd = os.open(f"/dev/{VG}/lv", os.O_RDONLY)
    try:
        with pytest.raises(InUse):
            lvm.lvremove(VG, "lv")
    finally:
        os.close(fd)
    lvm.lvremove(VG, "lv")
    # the disks fixture removes the VG and the PV


def _report(argv: list[str]) -> dict[str, str]:
    out = subprocess.run([*argv, "--reportformat", "json", "--units", "b", "--nosuffix"],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    (row,) = [r for rep in json.loads(out)["report"] for r in next(iter(rep.values()))]
    return dict(row)


def _same_space_as_vgs(backend: LogicalBackend, pool: PoolDef, runner: Runner,
                       lvm: Lvm) -> None:
    """The pool's size and free space, counted from the metadata, are vgs's: no lvm run."""
    runner.history.clear()
    sized = backend.refresh(pool)
    assert runner.history == []
    vg = lvm.vg(vg_of(pool))
    assert (sized.capacity, sized.available) == (vg.size, vg.free)


def test_disk_and_device_mapper_readers_agree_with_lvm(lvm: Lvm, disks: list[str]) -> None:
    """kvmpool.host.lvmdisk answers without lvm what lvs/pvs would, or says it cannot."""
    dev, dev2 = disks[:2]
    assert lvmdisk.read_label(dev) is None and lvmdisk.vg_metadata(dev) is None
    lvm.pvcreate([dev, dev2])
    pv = _report(["pvs", "-o", "pv_uuid,pe_start", dev])
    label = lvmdisk.read_label(dev)  # its checksums hold: LVM's CRC is computed right
    assert label is not None
    assert (label.pv_uuid, label.pe_start) == (pv["pv_uuid"], int(pv["pe_start"]))
    assert lvmdisk.vg_metadata(dev) is None  # a PV in no VG
    lvm.vgcreate("fastvg", [dev, dev2])
    meta = lvmdisk.vg_metadata(dev)
    assert meta is not None and (meta.name, meta.lvs) == ("fastvg", frozenset())
    # "a" gets two segments with "b" between them
    lvm.create_linear("fastvg", "a", 8 * MiB)
    lvm.create_linear("fastvg", "b-c", 8 * MiB)
    lvm.lvresize("fastvg", "a", 16 * MiB)
    meta = lvmdisk.vg_metadata(dev2)
    seqno = int(_report(["vgs", "-o", "vg_seqno", "fastvg"])["vg_seqno"])
    assert meta is not None and meta.lvs == {"a", "b-c"} and meta.seqno == seqno
    for name in ("a", "b-c"):
        lv = lvm.lv("fastvg", name)
        fast = lvmdisk.active_linear_lv("fastvg", name)
        assert fast is not None and (fast.uuid, fast.size) == (lv.uuid, lv.size)
        assert fast.extents == tuple(
            (d.path, d.first_extent * lv.extent_size, s.size)
            for s in lv.segments for d in s.devices)
    assert len(lvm.lv("fastvg", "a").segments) == 2
    # what the backend makes of them is what it makes of lvs' report, without one lvm call
    runner = Runner()
    backend = LogicalBackend(Context(runner))
    pool = parse_pool(f"<pool type='logical'><name>p</name><source><device path='{dev}'/>"
                      "<name>fastvg</name></source></pool>")
    fast_a = backend.volume(pool, "a")
    assert backend.check(pool) and backend.volume(pool, "nope") is None
    assert runner.history == []
    assert fast_a == backend._describe(pool, lvm.lv("fastvg", "a"))
    # a VG of active linear LVs only is listed without lvs too, as lvs would list it
    fast_list = backend.list_volumes(pool, details=True)
    assert runner.history == []
    assert sorted(fast_list, key=lambda v: v.name) == sorted(
        (backend._describe(pool, lv) for lv in lvm.lvs("fastvg")), key=lambda v: v.name)
    # a pool adopting the VG without naming a device finds a PV through an active LV
    adopted = parse_pool("<pool type='logical'><name>q</name><source><name>fastvg</name>"
                         "</source></pool>")
    assert lvmdisk.pv_of_active_lv("fastvg") in (dev, dev2)
    assert backend.check(adopted) and backend.volume(adopted, "nope") is None
    assert runner.history == []
    # pool-info's refresh: the VG's sizes counted from the metadata, no lvm command at all
    _same_space_as_vgs(backend, pool, runner, lvm)
    # anything else goes to lvs: an origin with a snapshot, a thin LV, an inactive LV
    lvm.create_snapshot("fastvg", "a", "s", 4 * MiB)
    _same_space_as_vgs(backend, pool, runner, lvm)
    lvm.create_thin_pool("fastvg", "tp", 16 * MiB)
    lvm.create_thin("fastvg", "tp", "t", 64 * MiB)
    _same_space_as_vgs(backend, pool, runner, lvm)
    lvm.lvchange("fastvg", "b-c", active=False)
    _same_space_as_vgs(backend, pool, runner, lvm)
    for name in ("a", "s", "t", "b-c"):
        assert lvmdisk.active_linear_lv("fastvg", name) is None
        runner.history.clear()
        assert backend.volume(pool, name) == backend._describe(pool, lvm.lv("fastvg", name))
        assert [c.argv[0] for c in runner.history] == ["lvs"]
    meta = lvmdisk.vg_metadata(dev)
    assert meta is not None and {"a", "b-c", "s", "t", "tp"} <= meta.lvs
    runner.history.clear()
    assert {v.name for v in backend.list_volumes(pool, details=True)} == {"a", "b-c", "s", "t"}
    assert [c.argv[0] for c in runner.history] == ["lvs"]
    # an LV striped over both PVs and a raid1 LV are counted as vgs counts them
    subprocess.run(["lvcreate", "-q", "-y", "-i", "2", "-L", "12M", "-n", "wide", "fastvg"],
                   check=True, capture_output=True, timeout=120)
    _same_space_as_vgs(backend, pool, runner, lvm)
    subprocess.run(["lvcreate", "-q", "-y", "--type", "raid1", "-m", "1", "-L", "8M", "-n",
                    "mirrored", "fastvg"], check=True, capture_output=True, timeout=120)
    _same_space_as_vgs(backend, pool, runner, lvm)
    # two PVs holding different versions of the metadata (a commit that reached one PV
    # only): no answer from the disks, lvm's instead
    both = parse_pool(f"<pool type='logical'><name>p2</name><source><device path='{dev2}'/>"
                      f"<device path='{dev}'/><name>fastvg</name></source></pool>")
    _same_space_as_vgs(backend, both, runner, lvm)
    fd = os.open(dev2, os.O_RDWR)
    try:
        behind = os.pread(fd, 1 << 20, 0)  # label and metadata area: pe_start is 1 MiB
        lvm.create_linear("fastvg", "late", 4 * MiB)
        os.pwrite(fd, behind, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    old, new = lvmdisk.vg_metadata(dev2), lvmdisk.vg_metadata(dev)
    assert old is not None and new is not None and old.seqno < new.seqno
    assert "late" in new.lvs and "late" not in old.lvs
    runner.history.clear()
    sized = backend.refresh(both)
    assert "vgs" in [c.argv[0] for c in runner.history]
    vg = lvm.vg("fastvg")
    assert (sized.capacity, sized.available) == (vg.size, vg.free)  # "late" counted
    # a removed VG leaves no metadata that could pass for it
    lvm.vgremove("fastvg")
    assert lvmdisk.vg_metadata(dev) is None and lvmdisk.vg_metadata(dev2) is None
    assert not backend.check(pool)
    assert lvmdisk.pv_of_active_lv("fastvg") is None and not backend.check(adopted)
