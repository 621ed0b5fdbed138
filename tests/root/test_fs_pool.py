"""fs pools end to end through the CLI, on real loop devices with real mkfs and mount."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from kvmpool import xml
from kvmpool.host.mount import read_mountinfo
from tests.conftest import Kvmpool
from tests.root.loops import head, loopdev, mounted, needs_root, one_line_error, sh

pytestmark = [pytest.mark.root, needs_root]
__all__ = ["loopdev"]  # the fixture, imported for pytest
MiB = 1024 * 1024
FLAGS = {"ext4": "-F", "xfs": "-f", "vfat": "-I", "btrfs": "-f"}


def kernel_mounts(fmt: str) -> bool:
    """Can this kernel mount ``fmt`` (built in, or a module it could load)?"""
    with open("/proc/filesystems") as f:
        if fmt in f.read().split():
            return True
    return os.path.isdir(f"/lib/modules/{os.uname().release}")


def blkid_type(dev: str) -> str:
    return sh("blkid", "-p", "-o", "value", "-s", "TYPE", dev, check=False).strip()


@pytest.mark.parametrize(("fmt", "size"),
                         [("ext4", 64), ("xfs", 320), ("vfat", 64), ("btrfs", 128)])
def test_fs_pool_lifecycle(kvmpool: Kvmpool, loopdev: Callable[[int], str], tmp_path: Path,
                           fmt: str, size: int) -> None:
    dev = loopdev(size)
    target = tmp_path / "pool"
    kvmpool("pool-define-as", "guest", "fs", "--source-dev", dev, "--source-format", fmt,
            "--target", str(target))
    before = head(dev)
    out = kvmpool("--dry-run", "pool-build", "guest", "--overwrite").out
    assert f"would run: wipefs --all {dev}\n" in out
    assert f"would run: mkfs -t {fmt} {FLAGS[fmt]} {dev}\n" in out
    assert head(dev) == before and not target.exists()

    assert kvmpool("pool-build", "guest", "--overwrite").out == "Pool guest built\n\n"
    assert blkid_type(dev) == fmt
    assert stat.S_IMODE(target.stat().st_mode) == 0o711
    if not kernel_mounts(fmt):  # e.g. a kernel built without vfat: one clear line
        err = one_line_error(kvmpool("pool-start", "guest", ok=False).err)
        assert f"this kernel cannot mount {fmt} file systems" in err
        assert mounted(target) is None
        pytest.skip(f"this kernel cannot mount {fmt}: built and refused cleanly")
    kvmpool("pool-start", "guest")
    entry = [e for e in read_mountinfo() if e.mount_point == str(target)][-1]
    assert entry.source == dev and entry.fstype == fmt
    assert {"nodev", "nosuid", "noexec"} <= set(entry.options.split(","))
    assert kvmpool("pool-list", "--name").out == "guest               \n\n"

    kvmpool("vol-create-as", "guest", "a.img", "4M")
    kvmpool("vol-create-as", "guest", "b.qcow2", "8M", "--format", "qcow2")
    data = os.urandom(MiB)
    with open(target / "a.img", "r+b") as f:
        f.write(data)
    vols = {v["name"]: v for v in json.loads(kvmpool("vol-list", "guest", "--json").out)}
    assert vols["a.img"]["capacity"] == 4 * MiB and vols["a.img"]["format"] == "raw"
    assert vols["b.qcow2"]["format"] == "qcow2" and vols["b.qcow2"]["capacity"] == 8 * MiB
    st = os.statvfs(target)
    info = json.loads(kvmpool("pool-info", "guest", "--json").out)
    assert info["capacity"] == st.f_frsize * st.f_blocks
    assert info["allocation"] + info["available"] == info["capacity"]
    xml.validate(kvmpool("pool-dumpxml", "guest").out, "pool")

    kvmpool("pool-destroy", "guest")
    assert mounted(target) is None and not (target / "a.img").exists()
    assert "is not active" in one_line_error(kvmpool("vol-list", "guest", ok=False).err)
    kvmpool("pool-start", "guest")
    assert (target / "a.img").read_bytes()[:MiB] == data  # survives destroy/start

    kvmpool("vol-delete", "a.img", "--pool", "guest")
    kvmpool("vol-delete", "b.qcow2", "--pool", "guest")
    kvmpool("pool-destroy", "guest")
    kvmpool("pool-delete", "guest")
    assert not target.exists() and blkid_type(dev) == fmt  # the file system stays
    kvmpool("pool-undefine", "guest")


def test_build_never_writes_over_data_without_overwrite(
        kvmpool: Kvmpool, loopdev: Callable[[int], str], tmp_path: Path) -> None:
    dev = loopdev(64)
    sh("mkfs.ext4", "-q", dev)
    target = tmp_path / "pool"
    kvmpool("pool-define-as", "guest", "fs", "--source-dev", dev, "--source-format", "vfat",
            "--target", str(target))
    before = head(dev)
    err = one_line_error(kvmpool("pool-build", "guest", "--no-overwrite", ok=False).err)
    assert f"{dev}: it holds an ext4 file system" in err and "--overwrite" in err
    assert head(dev) == before and not target.exists()
    # plain build makes the directory only, never a file system
    kvmpool("pool-build", "guest")
    assert head(dev) == before and target.is_dir()
    err = one_line_error(kvmpool("pool-start", "guest", ok=False).err)
    assert f"cannot mount {dev} as vfat: it holds an ext4 file system" in err
    assert mounted(target) is None
    # a partition table is data too
    sh("wipefs", "-a", dev)
    sh("parted", "-s", dev, "mklabel", "gpt")
    before = head(dev)
    err = one_line_error(kvmpool("pool-build", "guest", "--no-overwrite", ok=False).err)
    assert "a gpt partition table" in err and head(dev) == before
    kvmpool("pool-build", "guest", "--overwrite")
    assert blkid_type(dev) == "vfat"
    listed = sh("wipefs", "--no-act", dev)  # no signature of the old table survives
    assert "vfat" in listed and "gpt" not in listed and "PMBR" not in listed


def test_lvm_physical_volume_is_data(kvmpool: Kvmpool, loopdev: Callable[[int], str],
                                     tmp_path: Path) -> None:
    dev = loopdev(64)
    try:
        sh("pvcreate", "-q", "-y", dev)
    except Exception:
        pytest.skip("pvcreate cannot run here")
    try:
        kvmpool("pool-define-as", "guest", "fs", "--source-dev", dev, "--source-format",
                "ext4", "--target", str(tmp_path / "pool"))
        before = head(dev)
        err = one_line_error(kvmpool("pool-build", "guest", "--no-overwrite", ok=False).err)
        assert "an LVM physical volume" in err and head(dev) == before
    finally:
        sh("pvremove", "-q", "-y", "-ff", dev, check=False)


def test_target_must_be_a_directory(kvmpool: Kvmpool, loopdev: Callable[[int], str],
                                    tmp_path: Path) -> None:
    dev = loopdev(64)
    target = tmp_path / "file"
    target.write_text("not a dir")
    kvmpool("pool-define-as", "guest", "fs", "--source-dev", dev, "--source-format", "ext4",
            "--target", str(target))
    before = head(dev)
    err = one_line_error(kvmpool("pool-build", "guest", "--overwrite", ok=False).err)
    assert "exists and is not a directory" in err and head(dev) == before
    sh("mkfs.ext4", "-q", dev)
    err = one_line_error(kvmpool("pool-start", "guest", ok=False).err)
    assert f"cannot mount on '{target}': not a directory" in err
    assert target.read_text() == "not a dir"


def test_target_with_another_mount_is_refused(kvmpool: Kvmpool, loopdev: Callable[[int], str],
                                              tmp_path: Path) -> None:
    dev = loopdev(64)
    sh("mkfs.ext4", "-q", dev)
    target = tmp_path / "pool"
    target.mkdir()
    kvmpool("pool-define-as", "guest", "fs", "--source-dev", dev, "--source-format", "ext4",
            "--target", str(target))
    sh("mount", "-t", "tmpfs", "kvmpool-test", str(target))
    try:
        err = one_line_error(kvmpool("pool-start", "guest", ok=False).err)
        assert f"'{target}' already has kvmpool-test (tmpfs) mounted on it" in err
        assert mounted(target) == "kvmpool-test"
        assert kvmpool("pool-list", "--all").out.splitlines()[2].split()[1] == "inactive"
    finally:
        sh("umount", str(target))
    # the same device already mounted there is accepted, as libvirt does
    sh("mount", dev, str(target))
    kvmpool("pool-start", "guest")
    assert mounted(target) == dev
    kvmpool("pool-destroy", "guest")
    assert mounted(target) is None


def test_wrong_or_missing_device(kvmpool: Kvmpool, loopdev: Callable[[int], str],
                                 tmp_path: Path) -> None:
    dev = loopdev(320)
    sh("mkfs.xfs", "-q", dev)
    kvmpool("pool-define-as", "guest", "fs", "--source-dev", dev, "--source-format", "ext4",
            "--target", str(tmp_path / "a"))
    kvmpool("pool-build", "guest")
    err = one_line_error(kvmpool("pool-start", "guest", ok=False).err)
    assert f"cannot mount {dev} as ext4: it holds an xfs file system" in err
    kvmpool("pool-define-as", "gone", "fs", "--source-dev", "/dev/kvmpool-no-such-dev",
            "--source-format", "ext4", "--target", str(tmp_path / "b"))
    kvmpool("pool-build", "gone")
    err = one_line_error(kvmpool("pool-start", "gone", ok=False).err)
    assert "device path '/dev/kvmpool-no-such-dev' doesn't exist" in err
    err = one_line_error(kvmpool("pool-build", "gone", "--overwrite", ok=False).err)
    assert "doesn't exist" in err
    blank, other = loopdev(64), loopdev(64)
    kvmpool("pool-define-as", "two", "fs", "--source-dev", blank, "--source-dev", other,
            "--source-format", "ext4", "--target", str(tmp_path / "c"))
    for verb in ("pool-build", "pool-start"):
        err = one_line_error(kvmpool(verb, "two", ok=False).err)
        assert "pool 'two' (fs) needs exactly one source device, it has 2" in err
    assert not (tmp_path / "c").exists()
    kvmpool("pool-undefine", "two")
    kvmpool("pool-define-as", "auto", "fs", "--source-dev", blank, "--target",
            str(tmp_path / "d"))
    err = one_line_error(kvmpool("pool-build", "auto", "--overwrite", ok=False).err)
    assert "source format is 'auto'" in err
    sh("mkfs.ext4", "-q", blank)  # format auto: mount finds the type itself (no -t)
    kvmpool("pool-build", "auto")
    kvmpool("pool-start", "auto")
    assert mounted(tmp_path / "d") == blank
    kvmpool("pool-destroy", "auto")


def test_a_mount_that_vanishes_makes_the_pool_inactive(
        kvmpool: Kvmpool, loopdev: Callable[[int], str], tmp_path: Path) -> None:
    dev = loopdev(64)
    target = tmp_path / "pool"
    kvmpool("pool-define-as", "guest", "fs", "--source-dev", dev, "--source-format", "ext4",
            "--target", str(target))
    kvmpool("pool-build", "guest", "--no-overwrite")  # blank device: mkfs runs
    kvmpool("pool-start", "guest")
    kvmpool("vol-create-as", "guest", "v", "1M")
    sh("umount", str(target))  # behind kvmpool's back
    assert kvmpool("pool-list", "--all").out.splitlines()[2].split()[:2] == ["guest",
                                                                          "inactive"]
    one_line_error(kvmpool("vol-list", "guest", ok=False).err)
    kvmpool("pool-start", "guest")
    assert (target / "v").exists()
    kvmpool("pool-destroy", "guest")
