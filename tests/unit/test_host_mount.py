"""host.mount: mount/umount argv goldens, the mountinfo parser, the error classifier."""

from __future__ import annotations

import os
from pathlib import Path

from kvmpool.errors import HostCommandFailed, InUse, InvalidArgument, Unsupported
from kvmpool.host import mount

# Recorded from /proc/self/mountinfo on Debian 12 (the second line has an escaped space);
# the first is proc(5)'s example with two optional fields.
MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue
42 27 259:0 / /tmp/exp/m\040m rw,nosuid,nodev,noexec,relatime - ext4 /dev/loop0p1 rw
43 27 7:0 / /srv/pool rw,relatime - xfs /dev/loop0 rw,attr2,inode64
44 27 0:45 / /srv/pool rw,relatime - tmpfs tmpfs rw,size=100k
this line is not mountinfo
"""


def test_mount_argv_as_libvirt_builds_it() -> None:
    assert mount.mount_argv("/dev/sdb1", "/srv/p", "ext4") == [
        "mount", "-o", "nodev,nosuid,noexec", "-t", "ext4", "/dev/sdb1", "/srv/p"]
    assert mount.mount_argv("/dev/sdb1", "/srv/p", "auto") == [
        "mount", "-o", "nodev,nosuid,noexec", "/dev/sdb1", "/srv/p"]
    assert mount.mount_argv("/dev/sdb1", "/srv/p", None, ("noatime", "discard")) == [
        "mount", "-o", "nodev,nosuid,noexec,noatime,discard", "/dev/sdb1", "/srv/p"]
    assert mount.umount_argv("/srv/p") == ["umount", "/srv/p"]


def test_mountinfo_parser() -> None:
    entries = mount.parse_mountinfo(MOUNTINFO)
    assert len(entries) == 5
    root, bind, spaced, xfs, tmpfs = entries
    assert (root.mount_point, root.fstype, root.source, root.major, root.minor) == (
        "/", "ext4", "/dev/sda1", 8, 1)
    assert (bind.root, bind.mount_point, bind.fstype, bind.super_options) == (
        "/mnt1", "/mnt/parent", "ext3", "rw,errors=continue")
    assert spaced.mount_point == "/tmp/exp/m m" and spaced.options.startswith("rw,nosuid")
    assert xfs.source == "/dev/loop0" and (xfs.major, xfs.minor) == (7, 0)
    # two mounts stacked on one directory: the last is the visible one
    assert mount.mounted_at(entries, "/srv/pool") == tmpfs
    assert mount.mounted_at(entries, "/srv") is None


def test_same_device_by_path(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.write_bytes(b"")
    link = tmp_path / "link"
    os.symlink(dev, link)
    entry = mount.parse_mountinfo(
        f"50 27 7:9 / /x rw - ext4 {link} rw\n")[0]
    assert mount.same_device(entry, str(dev))
    assert not mount.same_device(entry, str(tmp_path / "other"))


def _failed(stderr: str) -> HostCommandFailed:
    return HostCommandFailed("mount failed", argv=["mount"], returncode=32, stderr=stderr)


def test_classify() -> None:
    err = mount.classify(_failed(
        "mount: /srv/p: wrong fs type, bad option, bad superblock on /dev/loop0, missing "
        "codepage or helper program, or other error.\n"), device="/dev/loop0", fmt="ext4")
    assert isinstance(err, InvalidArgument)
    assert str(err) == "cannot mount /dev/loop0: it holds no ext4 file system"
    kernel = mount.classify(_failed("mount: /tmp/vm: unknown filesystem type 'vfat'.\n"),
                            device="/dev/loop0", fmt="vfat")
    assert isinstance(kernel, Unsupported)
    assert str(kernel) == "this kernel cannot mount vfat file systems"
    busy = mount.classify(_failed("mount: /srv/p: /dev/loop0 already mounted on /srv/q.\n"),
                          device="/dev/loop0", fmt="xfs")
    assert isinstance(busy, InUse)
    other = _failed("mount: something new")
    assert mount.classify(other, device="/dev/loop0", fmt="xfs") is other
    umount = mount.classify_umount(_failed("umount: /srv/p: target is busy.\n"),
                                   target="/srv/p")
    assert isinstance(umount, InUse) and "/srv/p" in str(umount)
