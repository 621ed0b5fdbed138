"""host.mkfs: libvirt's mkfs argv (plus -f for btrfs), refusals, error classifier."""

from __future__ import annotations

import pytest

from kvmpool.errors import HostCommandFailed, InUse, InvalidArgument, ToolMissing
from kvmpool.host import mkfs


@pytest.mark.parametrize(("fmt", "flag"), [
    ("ext2", "-F"), ("ext3", "-F"), ("ext4", "-F"), ("xfs", "-f"), ("btrfs", "-f"),
    ("vfat", "-I"),
])
def test_mkfs_argv(fmt: str, flag: str) -> None:
    assert mkfs.mkfs_argv(fmt, "/dev/sdb1") == ["mkfs", "-t", fmt, flag, "/dev/sdb1"]


@pytest.mark.parametrize("fmt", [None, "auto", "iso9660", "ocfs2", "hfs+"])
def test_formats_kvmpool_cannot_make(fmt: str | None) -> None:
    with pytest.raises(InvalidArgument):
        mkfs.check_makeable(fmt)
    if fmt:
        with pytest.raises(InvalidArgument):
            mkfs.mkfs_argv(fmt, "/dev/sdb1")


def _failed(stderr: str) -> HostCommandFailed:
    return HostCommandFailed("mkfs failed", argv=["mkfs"], returncode=1, stderr=stderr)


def test_classify_recorded_errors() -> None:
    missing = mkfs.classify(_failed("mkfs: failed to execute mkfs.xfs: No such file or "
                                    "directory\n"), fmt="xfs", device="/dev/loop0")
    assert isinstance(missing, ToolMissing) and "apt-get install xfsprogs" in (missing.hint or "")
    small = mkfs.classify(_failed("Filesystem must be larger than 300MB.\nUsage: mkfs.xfs\n"),
                          fmt="xfs", device="/dev/loop0")
    assert isinstance(small, InvalidArgument)
    assert str(small) == "/dev/loop0 is too small for an xfs file system"
    mounted = mkfs.classify(_failed("mke2fs 1.47.0 (5-Feb-2023)\n/dev/loop0 contains a ext4 "
                                    "file system\n/dev/loop0 is mounted; will not make a "
                                    "filesystem here!\n"), fmt="ext4", device="/dev/loop0")
    assert isinstance(mounted, InUse)
    other = _failed("mkfs.vfat: something else")
    assert mkfs.classify(other, fmt="vfat", device="/dev/loop0") is other
