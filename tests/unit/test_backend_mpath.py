"""The mpath backend over a fake sysfs: which device-mapper devices are multipath maps, and
the volumes, sizes and lookups the CLI shows for them (the real thing: tests/vm)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmpool.backends import mpath
from kvmpool.backends.base import Context
from kvmpool.backends.mpath import MpathBackend
from kvmpool.host import multipath
from kvmpool.host.run import Runner
from kvmpool.model import PoolDef, PoolTarget, PoolType, VolType
from tests.conftest import Kvmpool

MiB = 1024 * 1024
WWID_A = "360000000000000000e00000000010001"
WWID_B = "360000000000000000e00000000020001"


def _dm(sys_block: Path, minor: int, name: str, uuid: str | None, size: int,
        slaves: tuple[str, ...] = ()) -> None:
    d = sys_block / f"dm-{minor}"
    (d / "dm").mkdir(parents=True)
    (d / "dev").write_text(f"253:{minor}\n")
    (d / "size").write_text(f"{size // 512}\n")
    (d / "dm" / "name").write_text(name + "\n")
    if uuid is not None:
        (d / "dm" / "uuid").write_text(uuid + "\n")
    (d / "slaves").mkdir()
    for s in slaves:
        (d / "slaves" / s).touch()


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    sys_block = tmp_path / "sys" / "block"
    sys_block.mkdir(parents=True)
    (sys_block / "sda").mkdir()  # not device-mapper at all
    _dm(sys_block, 0, "vg-lv", "LVM-" + "x" * 64, MiB)  # an LV
    _dm(sys_block, 3, "mpathb", f"mpath-{WWID_B}", 48 * MiB, ("sdc", "sdd"))
    _dm(sys_block, 1, "mpatha", f"mpath-{WWID_A}", 32 * MiB, ("sda", "sdb"))
    _dm(sys_block, 2, "mpatha1", f"part1-mpath-{WWID_A}", 16 * MiB)  # kpartx's partition
    _dm(sys_block, 4, "plain", None, MiB)  # dmsetup create without a uuid
    return sys_block


def test_maps_are_the_mpath_uuids(sysfs: Path) -> None:
    found = multipath.maps(str(sysfs))
    assert found == [
        multipath.Map("mpatha", "dm-1", 1, WWID_A, 32 * MiB, ("sda", "sdb")),
        multipath.Map("mpathb", "dm-3", 3, WWID_B, 48 * MiB, ("sdc", "sdd")),
    ]
    assert found[0].device == "/dev/mapper/mpatha"


def test_no_sysfs_no_maps(tmp_path: Path) -> None:
    assert multipath.maps(str(tmp_path / "absent")) == []


def test_a_map_with_an_unreadable_size_is_skipped(sysfs: Path) -> None:
    (sysfs / "dm-3" / "size").write_text("")
    assert [m.name for m in multipath.maps(str(sysfs))] == ["mpatha"]


def _backend(sysfs: Path, dev: Path) -> MpathBackend:
    backend = MpathBackend(Context(Runner(dry_run=True)))
    backend.sys_block = str(sysfs)
    backend.dev_dirs = (str(dev),)
    return backend


def test_volumes_as_libvirt_names_them(sysfs: Path, tmp_path: Path) -> None:
    pool = PoolDef(type=PoolType.MPATH, name="mp", uuid="00000000-0000-0000-0000-000000000001",
                   target=PoolTarget(path="/dev/mapper"))
    backend = _backend(sysfs, tmp_path / "mapper")
    vols = backend.list_volumes(pool, details=True)
    assert [(v.name, v.type, v.key, v.target.path, v.capacity, v.allocation) for v in vols] == [
        ("dm-1", VolType.BLOCK, "/dev/mapper/mpatha", "/dev/mapper/mpatha", 32 * MiB, 32 * MiB),
        ("dm-3", VolType.BLOCK, "/dev/mapper/mpathb", "/dev/mapper/mpathb", 48 * MiB, 48 * MiB),
    ]
    live = backend.refresh(pool)
    assert (live.capacity, live.allocation, live.available) == (80 * MiB, 80 * MiB, 0)
    for spec in ("dm-3", "/dev/mapper/mpathb", "mpathb"):
        found = backend.volume(pool, spec)
        assert found is not None and found.name == "dm-3", spec
    assert backend.volume(pool, "dm-2") is None  # the partition is no volume
    assert not backend.check(pool)
    (tmp_path / "mapper").mkdir()
    assert backend.check(pool)


def test_cli_lists_maps_as_volumes(sysfs: Path, tmp_path: Path, kvmpool: Kvmpool,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mapper").mkdir()
    monkeypatch.setattr(MpathBackend, "sys_block", str(sysfs))
    monkeypatch.setattr(MpathBackend, "dev_dirs", (str(tmp_path / "mapper"),))
    settled: list[Runner] = []
    monkeypatch.setattr(mpath.udev, "settle", settled.append)
    kvmpool("pool-define-as", "mp", "mpath", "--target", "/dev/mapper")
    kvmpool("pool-start", "mp")
    assert settled, "refresh waits for udev"
    out = kvmpool("vol-list", "mp", "--details").out
    lines = [ln.split() for ln in out.splitlines()[2:] if ln.strip()]
    assert lines == [["dm-1", "/dev/mapper/mpatha", "block", "32.00", "MiB", "32.00", "MiB"],
                     ["dm-3", "/dev/mapper/mpathb", "block", "48.00", "MiB", "48.00", "MiB"]]
    info = kvmpool("vol-info", "dm-3", "--pool", "mp", "--bytes").out
    assert f"Capacity:       {48 * MiB} bytes" in info and "Type:           block" in info
    assert kvmpool("vol-path", "dm-1", "--pool", "mp").out == "/dev/mapper/mpatha\n\n"
    assert kvmpool("vol-key", "dm-1", "--pool", "mp").out == "/dev/mapper/mpatha\n\n"
    assert kvmpool("vol-name", "/dev/mapper/mpathb").out == "dm-3\n\n"  # by path, no --pool
    assert f"Capacity:       {80 * MiB}" in kvmpool("pool-info", "mp", "--bytes").out
    err = kvmpool("vol-create-as", "mp", "new", "1M", ok=False).err
    assert "pool 'mp' (mpath) cannot create volumes" in err
    err = kvmpool("vol-delete", "dm-1", "--pool", "mp", ok=False).err
    assert "pool 'mp' (mpath) cannot delete volumes" in err
    kvmpool("pool-destroy", "mp")
    assert kvmpool("pool-list", "--all", "--name").out.split() == ["mp"]
