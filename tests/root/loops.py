"""Loop devices for the root tests: sparse files under tmp_path, always detached after."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvmpool.host.mount import read_mountinfo

MiB = 1024 * 1024

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, mount)")


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, check=check, capture_output=True, text=True,
                          timeout=300).stdout


def unmount_all(dev: str) -> None:
    """Unmount everything that comes from ``dev`` or its partitions (newest first)."""
    for entry in reversed(read_mountinfo()):
        if entry.source == dev or entry.source.startswith(dev + "p"):
            sh("umount", "-l", entry.mount_point, check=False)


@pytest.fixture
def loopdev(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """``loopdev(MiB)`` -> a fresh /dev/loopN (with --partscan) over a sparse file."""
    made: list[str] = []

    def make(size_mib: int) -> str:
        image = tmp_path / f"disk{len(made)}.img"
        with open(image, "wb") as f:
            f.truncate(size_mib * MiB)
        dev = sh("losetup", "--find", "--show", "--partscan", str(image)).strip()
        made.append(dev)
        return dev

    yield make
    for dev in made:
        unmount_all(dev)
        sh("losetup", "-d", dev, check=False)


def head(dev: str, mib: int = 4) -> str:
    """A digest of the device's first MiBs: "unchanged" means this digest is the same."""
    fd = os.open(dev, os.O_RDONLY)
    try:
        return hashlib.sha256(os.pread(fd, mib * MiB, 0)).hexdigest()
    finally:
        os.close(fd)


def one_line_error(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def mounted(target: Path) -> str | None:
    """The source mounted on ``target``, or None."""
    for entry in reversed(read_mountinfo()):
        if entry.mount_point == str(target):
            return entry.source
    return None
