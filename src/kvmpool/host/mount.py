"""mount/umount argv builders, the /proc/self/mountinfo parser, and an error classifier.

libvirt mounts an fs pool with ``mount -o nodev,nosuid,noexec[,<fs:mount_opts>] -t FMT
DEV TARGET`` (no ``-t`` for ``auto``) and unmounts with ``umount TARGET``. kvmpool reads
mount state from ``/proc/self/mountinfo`` (libvirt reads /etc/mtab, which is a link to
/proc/self/mounts on current systems; mountinfo also gives the device number).

Host commands it may run: mount, umount (Debian package mount).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from kvmpool.errors import HostCommandFailed, InUse, InvalidArgument, KvmpoolError, Unsupported

MOUNT_TIMEOUT = 120.0
BASE_OPTIONS = ("nodev", "nosuid", "noexec")
MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True, slots=True)
class MountEntry:
    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str  # the part of the file system mounted here ("/" for the whole fs)
    mount_point: str
    options: str  # per-mount options (rw,nosuid,...)
    fstype: str
    source: str  # "/dev/loop0", "tmpfs", "host:/export" ...
    super_options: str


def mount_argv(source: str, target: str, fmt: str | None,
               extra_options: Sequence[str] = ()) -> list[str]:
    """>>> mount_argv("/dev/sdb1", "/srv/pool", "ext4")
    ['mount', '-o', 'nodev,nosuid,noexec', '-t', 'ext4', '/dev/sdb1', '/srv/pool']
    """
    argv = ["mount", "-o", ",".join((*BASE_OPTIONS, *extra_options))]
    if fmt and fmt != "auto":
        argv += ["-t", fmt]
    argv += [source, target]
    return argv


def umount_argv(target: str) -> list[str]:
    """>>> umount_argv("/srv/pool")
    ['umount', '/srv/pool']
    """
    return ["umount", target]


def _unescape(field: str) -> str:
    r"""mountinfo escapes space, tab, newline and backslash as \040 \011 \012 \134."""
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        chunk = field[i + 1:i + 4]
        if field[i] == "\\" and len(chunk) == 3 and all(c in "01234567" for c in chunk):
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


# /proc/self/mountinfo (proc(5)): optional fields end with "-"
#   36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
#   612 29 7:0 / /tmp/p\040q rw,nosuid,nodev,noexec,relatime shared:331 - ext4 /dev/loop0 rw
def parse_mountinfo(text: str) -> list[MountEntry]:
    entries: list[MountEntry] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
            major, minor = fields[2].split(":")
            entries.append(MountEntry(
                mount_id=int(fields[0]), parent_id=int(fields[1]),
                major=int(major), minor=int(minor),
                root=_unescape(fields[3]), mount_point=_unescape(fields[4]),
                options=fields[5], fstype=fields[dash + 1],
                source=_unescape(fields[dash + 2]),
                super_options=fields[dash + 3] if len(fields) > dash + 3 else ""))
        except (ValueError, IndexError):
            continue  # a line this parser does not understand is no mount kvmpool needs
    return entries


def read_mountinfo(path: str = MOUNTINFO) -> list[MountEntry]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def mounted_at(entries: Sequence[MountEntry], target: str) -> MountEntry | None:
    """The mount that is visible at ``target`` (the last one stacked there), or None."""
    found = None
    for entry in entries:
        if entry.mount_point == target:
            found = entry
    return found


def same_device(entry: MountEntry, device: str) -> bool:
    """Is ``entry`` a mount of ``device`` (same node, or the same path after links)?"""
    try:
        if os.path.realpath(entry.source) == os.path.realpath(device):
            return True
        rdev = os.stat(device).st_rdev
    except OSError:
        return False
    return rdev != 0 and (os.major(rdev), os.minor(rdev)) == (entry.major, entry.minor)


def classify(err: HostCommandFailed, *, device: str,
             fmt: str | None) -> KvmpoolError:
    """Turn a failed mount into an error the user can act on."""
    text = err.stderr
    if "unknown filesystem type" in text:
        return Unsupported(f"this kernel cannot mount {fmt or 'that'} file systems",
                           hint=f"load its module (modprobe {fmt})" if fmt else None)
    if "wrong fs type" in text:
        kind = f"an {fmt}" if fmt and fmt[:1] in "aeiox" else f"a {fmt}"
        return InvalidArgument(
            f"cannot mount {device}: it holds no {fmt} file system" if fmt and fmt != "auto"
            else f"cannot mount {device}: no file system kvmpool can mount",
            hint=f"check the pool's <device> and <format>, or make {kind} file system with "
                 "pool-build --overwrite" if fmt and fmt != "auto" else None)
    if "already mounted" in text or "busy" in text:
        return InUse(f"cannot mount {device}: it is busy (already mounted or in use)")
    if "does not exist" in text or "No such file" in text:
        return InvalidArgument(f"cannot mount {device}: no such device")
    return err


def classify_umount(err: HostCommandFailed, *, target: str) -> KvmpoolError:
    if "busy" in err.stderr:
        return InUse(f"cannot unmount '{target}': it is busy (a file on it is in use)",
                     hint="stop the guests and programs using its volumes")
    return err
